import fp from 'fastify-plugin';
import { createEmbeddingClient, type EmbeddingClient } from '../llm/embeddings.js';
import { openaiRoutes } from './openai.routes.js';
import { createOpenAiService } from './openai.service.js';

/**
 * The OpenAI-compatible API (`/v1`, CONTRACT §9): chat completions are stateless chat turns (the chat module's), so
 * redaction, routing, budgets and audit are chat's own; models and embeddings are this module's service. Its routes
 * go to the `/v1` subtree (src/http/v1.ts), which authenticates API keys and answers errors in OpenAI's shape.
 */
export const openaiModule = fp(
  async (app) => {
    const clients = new Map<string, EmbeddingClient>();
    const service = createOpenAiService({
      db: app.infra.database.db,
      llm: app.llm,
      audit: app.audit,
      embeddingClient(modelId) {
        let client = clients.get(modelId);
        if (!client) {
          client = createEmbeddingClient({
            modelId,
            providers: app.config.llm,
            timeoutMs: app.config.documents.embeddingTimeoutMs,
            batchSize: app.config.documents.embeddingBatchSize,
          });
          if (clients.size < 64) clients.set(modelId, client);
        }
        return client;
      },
      embeddingModel: app.config.documents.embeddingModel,
      redactCloudPrompts: app.config.llm.redactCloudPrompts,
    });
    app.v1.routes(openaiRoutes, { chat: app.chat, service, rateLimit: app.config.llm.chatRateLimit, turns: app.chatTurns });
  },
  { name: 'module-openai', dependencies: ['infra', 'auth', 'module-audit', 'module-llm', 'module-chat', 'module-api-keys', 'v1-routes'] },
);

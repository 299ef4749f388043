import fp from 'fastify-plugin';
import { createLlmRepository } from './llm.repository.js';
import { llmRoutes } from './llm.routes.js';
import { createLlmService, type LlmService } from './llm.service.js';
import { routeSdkWarnings } from './providers/index.js';

export type { LlmModelView, LlmService, ResolvedModel, TokenCounts } from './llm.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The LLM gateway: providers, models, settings, token accounting, one streaming model call. */
    llm: LlmService;
  }
}

/** The LLM gateway module; chat builds on it. Provider keys set through the API are system credentials of the vault module. */
export const llmModule = fp(
  async (app) => {
    routeSdkWarnings((message) => app.log.warn(message));
    const credentials = app.systemCredentials.forComponent('llm', 'llm:configure');
    const llm = createLlmService({
      db: app.infra.database.db,
      repository: createLlmRepository(),
      audit: app.audit,
      config: app.config.llm,
      // Only the gateway's own namespace (`llm.*`) of the system credentials, never users' secrets.
      credentials: () => credentials,
      pubsub: app.infra.pubsub,
      logger: app.log,
    });
    app.decorate('llm', llm);

    let unsubscribe: (() => Promise<void>) | undefined;
    app.addHook('onReady', async () => {
      unsubscribe = await llm.start();
    });
    app.addHook('onClose', async () => {
      await unsubscribe?.();
    });

    app.apiV1.routes(llmRoutes, { llm });
  },
  { name: 'module-llm', dependencies: ['infra', 'auth', 'module-audit', 'module-vault'] },
);

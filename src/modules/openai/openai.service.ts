import { performance } from 'node:perf_hooks';
import type { Db } from '../../db/client.js';
import { ForbiddenError, ValidationError } from '../../lib/errors.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, type Actor, type RequestContext } from '../auth/permissions.js';
import { countsForAudit, createRedactor } from '../chat/chat.context.js';
import { countTokens, loadTokenizer } from '../chat/chat.tokens.js';
import { EmbeddingConfigError, type EmbeddingClient } from '../llm/embeddings.js';
import { UnknownModelError, type LlmService } from '../llm/llm.service.js';
import { PlaceholderVault } from '../redaction/index.js';

export interface OpenAiModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

export interface EmbedInput {
  model: string;
  inputs: string[];
}

export interface EmbedResult {
  model: string;
  vectors: number[][];
  promptTokens: number;
}

export interface OpenAiServiceDeps {
  db: Db;
  llm: Pick<LlmService, 'usableModels' | 'resolveModel' | 'checkBudget' | 'recordUsage' | 'redactionPolicy'>;
  audit: Pick<AuditRecorder, 'recordStandalone' | 'promptDigest'>;
  /** The client for an embedding model (`provider/model`); throws EmbeddingConfigError when it has no embeddings API. */
  embeddingClient(modelId: string): EmbeddingClient;
  /** EMBEDDING_MODEL: always listed for embeddings, even when its provider's listing does not name it. */
  embeddingModel: string | undefined;
  redactCloudPrompts: boolean;
}

function requireChat(actor: Actor): void {
  if (!hasPermission(actor.role, 'chat')) throw new ForbiddenError('This action needs the chat permission');
}

/**
 * The parts of the OpenAI-compatible API that are not a chat turn: the models a caller may use, and embeddings under
 * the same policies as chat — model access, the daily token budget, redaction towards cloud providers, and the
 * LLM_REQUEST / PII_REDACTED audit events.
 */
export function createOpenAiService(deps: OpenAiServiceDeps) {
  const { db, llm, audit } = deps;

  return {
    /** `GET /v1/models`: enabled models of configured providers that the caller's role may use. */
    async listModels(actor: Actor): Promise<OpenAiModel[]> {
      requireChat(actor);
      const models = await llm.usableModels(actor);
      return models.map((model) => ({ id: model.id, object: 'model', created: 0, owned_by: model.provider }));
    },

    /**
     * Vectors for the inputs. A cloud embedding model gets the inputs redacted (placeholders, as for a cloud chat
     * model), so its vectors are of the redacted text; a local one gets them as they are.
     */
    async embed(actor: Actor, input: EmbedInput, context: RequestContext): Promise<EmbedResult> {
      requireChat(actor);
      await llm.checkBudget(actor.userId);
      try {
        await llm.resolveModel(input.model, undefined, { role: actor.role });
      } catch (error) {
        // EMBEDDING_MODEL need not be in its provider's chat listing; model access still applies to it.
        if (!(error instanceof UnknownModelError && error.modelId === deps.embeddingModel)) throw error;
      }
      let client: EmbeddingClient;
      try {
        client = deps.embeddingClient(input.model);
      } catch (error) {
        if (error instanceof EmbeddingConfigError) throw new ValidationError(`Model ${input.model} cannot embed: ${error.message}`, [{ pointer: '/model', detail: error.message }]);
        throw error;
      }
      await loadTokenizer();
      const redacting = deps.redactCloudPrompts && !client.isLocal;
      // Throws RedactionFailedError (nothing is sent) when detection cannot finish.
      const redactor = redacting ? createRedactor(new PlaceholderVault(), await llm.redactionPolicy()) : undefined;
      const outgoing = redactor ? input.inputs.map((text) => redactor.text(text)) : input.inputs;
      const promptTokens = input.inputs.reduce((sum, text) => sum + countTokens(text), 0);
      const base = { userId: actor.userId, sessionId: actor.sessionId, context, resourceType: 'embedding', resourceId: input.model };
      const common = { model: input.model, provider: client.provider, is_local: client.isLocal, inputs: input.inputs.length };
      const started = performance.now();
      let vectors: number[][] | undefined;
      let failure: unknown;
      try {
        vectors = await client.embed(outgoing);
      } catch (error) {
        failure = error;
      }
      const events: AuditEventInput[] = [];
      const counts = redactor ? countsForAudit(redactor.counts) : null;
      if (counts && counts.total > 0) events.push({ ...base, eventType: 'PII_REDACTED', details: { ...common, kind: 'embeddings', ...counts } });
      events.push({
        ...base,
        eventType: 'LLM_REQUEST',
        details: {
          ...common,
          kind: 'embeddings',
          status: failure === undefined ? 'completed' : 'error',
          input_tokens: promptTokens,
          latency_ms: Math.round(performance.now() - started),
          redacted: redactor !== undefined,
          ...(failure !== undefined ? { error: failure instanceof Error ? failure.message : 'unexpected error' } : {}),
          ...audit.promptDigest(input.inputs.join('\n')),
        },
      });
      // The call has happened: its tokens count and it is audited, whatever the outcome.
      const written = await Promise.allSettled([
        llm.recordUsage(db, actor.userId, { input_tokens: promptTokens, output_tokens: 0 }),
        ...events.map((event) => audit.recordStandalone(event)),
      ]);
      if (failure !== undefined) throw failure;
      const rejected = written.find((outcome) => outcome.status === 'rejected');
      if (rejected) throw rejected.reason;
      return { model: input.model, vectors: vectors!, promptTokens };
    },
  };
}

export type OpenAiService = ReturnType<typeof createOpenAiService>;

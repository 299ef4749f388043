import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SseStream } from '../../lib/sse.js';
import type { ChatTurnTracker } from '../chat/index.js';
import type { ChatService, PreparedStatelessTurn } from '../chat/chat.service.js';
import type { TurnEventSink } from '../chat/turn.js';
import { createChunkStream, createCompletionCollector, toStatelessInput, type CompletionMeta } from './openai.adapter.js';
import { toOpenAiError } from './openai.errors.js';
import { ChatCompletionBody, ChatCompletionSchema, EmbeddingList, EmbeddingsBody, ModelList, OpenAiErrorSchema } from './openai.schemas.js';
import type { OpenAiService } from './openai.service.js';

const tags = ['openai'];
const security = [{ apiKeyAuth: [] }];

export interface OpenAiRoutesOptions {
  chat: ChatService;
  service: OpenAiService;
  /** The per-user limit of /api/v1/chat (CHAT_RATE_LIMIT_*), applied the same way here. */
  rateLimit: { max: number; periodSeconds: number };
  /** Chat's own bookkeeping of running turns: shutdown waits for these too, and ends their streams. */
  turns: ChatTurnTracker;
}

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: OpenAiErrorSchema } } });
const ERRORS = {
  400: errorResponse('The request is invalid (OpenAI has no 422: schema problems are 400 too); `param` names the field'),
  401: errorResponse('No API key, or one that is unknown, expired, revoked, or whose user is deactivated'),
  403: errorResponse('The key lacks the scope, or sensitivity routing refused the request (`code: sensitivity_routing_refused`)'),
  404: errorResponse('The model does not exist or the caller may not use it (`code: model_not_found`), or a document in `cdsa.document_ids` cannot be read'),
  429: errorResponse('Rate limit (`rate_limit_exceeded`) or daily token budget (`insufficient_quota`); `Retry-After` says when'),
} as const;

const unixSeconds = () => Math.floor(Date.now() / 1000);

/** Aborts when the client leaves before the response is complete. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export const openaiRoutes: FastifyPluginAsyncTypebox<OpenAiRoutesOptions> = async (app, options) => {
  const { chat, service } = options;
  const rateLimit = (bucket: string) => ({
    max: options.rateLimit.max,
    timeWindow: options.rateLimit.periodSeconds * 1000,
    // Route hooks run after the subtree's authentication hook: the limit is per user.
    keyGenerator: (request: FastifyRequest) => `${bucket}:${request.actor?.userId ?? request.ip}`,
  });

  function logUnexpected(request: FastifyRequest, error: unknown): void {
    if (toOpenAiError(error).unexpected) request.log.error({ err: error }, 'chat completion failed');
  }

  /**
   * The stream opens at the first chunk, not before: a failure before any output (the provider down, a redaction
   * that cannot finish) is still an ordinary error response with its status, which OpenAI clients turn into typed
   * errors. After that, a failure is an `{"error": ...}` chunk, which they raise as well.
   */
  async function streamed(request: FastifyRequest, reply: FastifyReply, turn: PreparedStatelessTurn, meta: CompletionMeta, includeUsage: boolean): Promise<void> {
    const shutdown = new AbortController();
    const chunks = createChunkStream(meta, { includeUsage });
    let sse: SseStream | undefined;
    let early: { error: unknown } | undefined;
    let untrack: () => void = () => undefined;
    const open = (): SseStream => {
      if (!sse) {
        const opened = app.infra.sse.open(request, reply, { onShutdown: () => shutdown.abort() });
        // A turn that could not finish within the grace period: its stream is ended at shutdown all the same.
        const forget = options.turns.trackStream(() => opened.close());
        untrack = () => void forget();
        sse = opened;
      }
      return sse;
    };
    const sendError = (error: unknown) => {
      logUnexpected(request, error);
      open().sendData(JSON.stringify(toOpenAiError(error).body));
    };
    const sink: TurnEventSink = {
      signal: AbortSignal.any([clientGone(reply), shutdown.signal]),
      emit(event) {
        if (event.type === 'error') {
          if (!sse) early = { error: event.error };
          else sendError(event.error);
          return;
        }
        if (event.type === 'done') {
          if (event.status === 'completed') open().sendData('[DONE]');
          return;
        }
        for (const chunk of chunks.chunks(event)) open().sendData(JSON.stringify(chunk));
      },
    };
    try {
      await turn.run(sink);
    } catch (error) {
      if (!sse) throw error;
      sendError(error);
    } finally {
      untrack();
    }
    if (!sse && early) throw early.error;
    open().close();
  }

  async function collected(reply: FastifyReply, turn: PreparedStatelessTurn, meta: CompletionMeta) {
    const collector = createCompletionCollector(meta);
    let failure: { error: unknown } | undefined;
    await turn.run({
      signal: clientGone(reply),
      emit(event) {
        if (event.type === 'error') failure ??= { error: event.error };
        else collector.add(event);
      },
    });
    if (failure) throw failure.error;
    return collector.completion();
  }

  app.get(
    '/models',
    {
      config: { requires: 'chat', apiKeyScope: ['chat', 'embeddings'] },
      schema: {
        tags,
        security,
        operationId: 'openaiListModels',
        summary: 'The models the key owner may use (OpenAI format)',
        description: "Enabled models of configured providers that the key owner's role may use (`model_access` of /llm/config). Scope `chat` or `embeddings`.",
        response: { 200: ModelList, 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429] },
      },
    },
    async (request) => ({ object: 'list' as const, data: await service.listModels(app.requireActor(request)) }),
  );

  app.post(
    '/chat/completions',
    {
      config: { requires: 'chat', apiKeyScope: 'chat', rateLimit: rateLimit('chat') },
      schema: {
        tags,
        security,
        operationId: 'openaiCreateChatCompletion',
        summary: 'A chat completion under every CDSA policy (OpenAI format, streaming or not)',
        description:
          "OpenAI's chat completions, with CDSA's policies: PII redacted towards cloud models and restored in the answer " +
          '(streamed text and tool-call arguments too), sensitivity routing, model access, the daily token budget, per-user ' +
          'rate limits, and USER_QUERY / LLM_REQUEST / PII_REDACTED / LLM_ROUTED audit events naming the API key. ' +
          'The client holds the conversation: nothing is stored as a chat session. Client tools (function calling) are passed ' +
          "to the model and its calls returned; CDSA's own gated tools are never offered here. `response_format` is passed to " +
          'providers that have it. Extension `cdsa: {document_ids?, knowledge?}` grounds the answer in documents with the key ' +
          "owner's clearance; citations come back in `cdsa.citations` (on the last chunk when streaming). With `stream: true` " +
          'the answer is `text/event-stream` of `chat.completion.chunk` objects ending with `data: [DONE]`; ' +
          '`stream_options.include_usage` adds a last chunk with the usage. Scope `chat`.',
        body: ChatCompletionBody,
        produces: ['application/json', 'text/event-stream'],
        response: {
          200: {
            description: 'The completion; with `stream: true`, server-sent `chat.completion.chunk` objects, then `data: [DONE]`',
            content: { 'application/json': { schema: ChatCompletionSchema }, 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...ERRORS,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      // The whole request is tracked, its checks and audit included: shutdown lets it finish before the database closes.
      const work = (async () => {
        const turn = await chat.startStatelessTurn(app.requireActor(request), toStatelessInput(body), request.requestContext);
        const meta: CompletionMeta = {
          id: `chatcmpl-${turn.turnId.replace(/-/g, '')}`,
          created: unixSeconds(),
          model: turn.model.id,
          label: turn.label,
          cdsaRequested: body.cdsa !== undefined,
        };
        if (body.stream !== true) return collected(reply, turn, meta);
        await streamed(request, reply, turn, meta, body.stream_options?.include_usage === true);
        return reply;
      })();
      options.turns.track(work.catch(() => undefined));
      return work;
    },
  );

  app.post(
    '/embeddings',
    {
      config: { requires: 'chat', apiKeyScope: 'embeddings', rateLimit: rateLimit('embeddings') },
      schema: {
        tags,
        security,
        operationId: 'openaiCreateEmbeddings',
        summary: 'Embeddings, redacted towards cloud providers (OpenAI format)',
        description:
          'Vectors for one text or a list of texts. Towards a cloud embedding provider the texts are redacted first (the ' +
          'vectors are of the redacted text); model access and the daily token budget apply; audited as LLM_REQUEST ' +
          '(and PII_REDACTED) naming the API key. `encoding_format: base64` answers little-endian float32 in base64, as ' +
          "OpenAI's clients ask by default. Scope `embeddings`.",
        body: EmbeddingsBody,
        response: { 200: EmbeddingList, ...ERRORS },
      },
    },
    async (request) => {
      const body = request.body;
      const inputs = typeof body.input === 'string' ? [body.input] : body.input;
      const result = await service.embed(app.requireActor(request), { model: body.model, inputs }, request.requestContext);
      const base64 = body.encoding_format === 'base64';
      return {
        object: 'list' as const,
        data: result.vectors.map((vector, index) => ({
          object: 'embedding' as const,
          index,
          embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
        })),
        model: result.model,
        usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
      };
    },
  );
};

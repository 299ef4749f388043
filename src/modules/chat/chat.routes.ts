import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { asDependencyError, dependencyFailureMessage } from '../../lib/dependency-errors.js';
import { AppError } from '../../lib/errors.js';
import { problem } from '../../plugins/problem-details.js';
import { LlmProviderError } from '../llm/providers/index.js';
import {
  CHAT_STREAM_DESCRIPTION,
  ContinueBody,
  ExportQuery,
  ListSessionsQuery,
  SessionDetailSchema,
  SessionPage,
  SessionParams,
  StreamBody,
} from './chat.schemas.js';
import type { ChatService, PreparedTurn } from './chat.service.js';
import { toSseEvent } from './sse-adapter.js';
import type { TurnEventSink } from './turn.js';

const tags = ['chat'];

export interface ChatRoutesOptions {
  chat: ChatService;
  rateLimit: { max: number; periodSeconds: number };
  /** Requests still running (never rejects), so shutdown can let them store what they have. */
  track(turn: Promise<unknown>): void;
  /** An open chat stream and how to end it at once with `done interrupted`; returns the function that forgets it. */
  trackStream(end: () => void): () => void;
}

const eventStream = {
  200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: Type.String() } } },
};

/** The problem object of an `error` event: the same shape as any error response, never a stack trace. */
function toProblem(request: FastifyRequest, error: unknown) {
  if (error instanceof AppError) {
    const extensions = error instanceof LlmProviderError ? { ...error.extensions, code: error.code } : error.extensions;
    return problem(request, error.status, error.message, extensions, error.title);
  }
  const unavailable = asDependencyError(error);
  if (unavailable) {
    request.log.warn({ dependency: unavailable.dependency, err: dependencyFailureMessage(error) }, 'dependency unavailable during a chat turn');
    return problem(request, unavailable.status, unavailable.message, unavailable.extensions, unavailable.title);
  }
  request.log.error({ err: error }, 'chat turn failed');
  return problem(request, 500, 'An unexpected error occurred');
}

export const chatRoutes: FastifyPluginAsyncTypebox<ChatRoutesOptions> = async (app, options) => {
  const { chat } = options;
  const rateLimit = {
    max: options.rateLimit.max,
    timeWindow: options.rateLimit.periodSeconds * 1000,
    // Route hooks run after the authentication hook, so the limit is per user, not per address.
    keyGenerator: (request: FastifyRequest) => `chat:${request.actor?.userId ?? request.ip}`,
  };

  /**
   * Opens the stream only now: every refusal before this point was an ordinary problem response. When the server shuts
   * down, the turn is stopped (what it streamed is stored as interrupted) and the stream still ends with `done`.
   */
  async function stream(request: FastifyRequest, reply: FastifyReply, turn: PreparedTurn): Promise<void> {
    const shutdown = new AbortController();
    const sse = app.infra.sse.open(request, reply, { onShutdown: () => shutdown.abort() });
    const endInterrupted = () => sse.close({ event: 'done', data: { status: 'interrupted' } });
    const untrack = options.trackStream(endInterrupted);
    const problemOf = (error: unknown) => toProblem(request, error);
    const sink: TurnEventSink = {
      // The client leaving and the server shutting down both stop the turn.
      signal: AbortSignal.any([sse.signal, shutdown.signal]),
      emit: (event) => {
        const out = toSseEvent(event, problemOf);
        sse.send(out.event, out.data);
      },
    };
    try {
      const status = await turn.run(sink);
      if (status === 'interrupted') endInterrupted();
    } catch (error) {
      if (sse.closed) {
        request.log.error({ err: error }, 'chat turn failed after the client left');
      } else {
        sink.emit({ type: 'error', error });
        sink.emit({ type: 'done', status: 'error' });
      }
    } finally {
      untrack();
      sse.close();
    }
  }

  /** The whole request is tracked, not only its stream: a continuation may still be running its tool call. */
  async function respond(request: FastifyRequest, reply: FastifyReply, prepare: () => Promise<PreparedTurn>): Promise<void> {
    const work = prepare().then((turn) => stream(request, reply, turn));
    options.track(work.catch(() => undefined));
    await work;
  }

  app.post(
    '/chat/stream',
    {
      config: { requires: 'chat', rateLimit },
      schema: {
        tags,
        summary: 'Send a message and stream the answer (server-sent events)',
        description: CHAT_STREAM_DESCRIPTION,
        body: StreamBody,
        produces: ['text/event-stream'],
        response: eventStream,
      },
    },
    async (request, reply) => {
      await respond(request, reply, () => chat.startTurn(app.requireActor(request), request.body, request.requestContext));
    },
  );

  app.post(
    '/chat/continue',
    {
      config: { requires: 'chat', rateLimit },
      schema: {
        tags,
        summary: 'Continue a chat after an approval was decided (server-sent events)',
        description:
          'Claims the decided approval for the session (once), then streams: `session` `{session_id, message_id}` (the ' +
          'stored tool result), `tool_result` (the approved call\'s outcome, or `rejected`/`expired`), then the model\'s ' +
          'continuation as in POST /chat/stream. 404 for another user\'s session or an approval not requested in it; ' +
          '409 while the approval is pending or when it was already continued.',
        body: ContinueBody,
        produces: ['text/event-stream'],
        response: eventStream,
      },
    },
    async (request, reply) => {
      await respond(request, reply, () => chat.continueTurn(app.requireActor(request), request.body, request.requestContext));
    },
  );

  app.get(
    '/chat/sessions',
    {
      config: { requires: 'chat' },
      schema: { tags, summary: "The caller's chat sessions, latest activity first", querystring: ListSessionsQuery, response: { 200: SessionPage } },
    },
    async (request) => chat.listSessions(app.requireActor(request), request.query),
  );

  app.get(
    '/chat/sessions/:id',
    {
      config: { requires: 'chat' },
      schema: { tags, summary: 'One session with all its messages', params: SessionParams, response: { 200: SessionDetailSchema } },
    },
    async (request) => chat.getSession(app.requireActor(request), request.params.id),
  );

  app.delete(
    '/chat/sessions/:id',
    {
      config: { requires: 'chat' },
      schema: {
        tags,
        summary: 'Delete a session and all its messages',
        params: SessionParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await chat.deleteSession(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/chat/sessions/:id/export',
    {
      config: { requires: 'chat' },
      schema: {
        tags,
        summary: 'Export a session as JSON or Markdown',
        params: SessionParams,
        querystring: ExportQuery,
        produces: ['application/json', 'text/markdown'],
        response: {
          200: {
            description: 'The session as a downloadable document',
            content: {
              'application/json': { schema: SessionDetailSchema },
              'text/markdown': { schema: Type.String() },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const file = await chat.exportSession(app.requireActor(request), request.params.id, request.query.format ?? 'json');
      return reply
        .header('content-type', file.contentType)
        .header('content-disposition', `attachment; filename="${file.filename}"`)
        .send(file.body);
    },
  );
};

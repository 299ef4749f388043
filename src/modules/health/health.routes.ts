import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { problem, sendProblem } from '../../plugins/problem-details.js';

const CheckState = Type.Union([Type.Literal('ok'), Type.Literal('down'), Type.Literal('not_configured')]);

const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  checks: Type.Object({ database: CheckState, redis: CheckState }),
  database: Type.Union([Type.Literal('embedded'), Type.Literal('postgres')]),
  vector_search: Type.Union([Type.Literal('available'), Type.Literal('unavailable')]),
  vector_search_fallback: Type.Union([Type.String(), Type.Null()]),
  jobs: Type.Union([Type.Literal('in-process'), Type.Literal('bullmq')]),
  document_embeddings: Type.Object({ status: Type.Literal('keyword-only'), reason: Type.String() }),
});

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    {
      config: { public: true, rateLimit: false },
      schema: {
        tags: ['health'],
        summary: 'Liveness',
        response: { 200: Type.Object({ status: Type.Literal('ok'), version: Type.String() }) },
      },
    },
    async () => ({ status: 'ok' as const, version: app.config.version }),
  );

  app.get(
    '/health/ready',
    {
      config: { public: true, rateLimit: false },
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database (and Redis, when configured) answer',
        response: { 200: Readiness },
      },
    },
    async (request, reply) => {
      const { database, redis, vectorSearch, jobs } = app.infra;
      const checks = { database: 'ok', redis: redis ? 'ok' : 'not_configured' } as {
        database: 'ok' | 'down';
        redis: 'ok' | 'down' | 'not_configured';
      };
      await within(database.ping(), 2_000).catch(() => {
        checks.database = 'down';
      });
      if (redis) {
        await within(redis.ping(), 1_000).catch(() => {
          checks.redis = 'down';
        });
      }
      const body = {
        status: 'ready' as 'ready' | 'unavailable',
        checks,
        database: database.kind,
        vector_search: vectorSearch,
        vector_search_fallback: vectorSearch === 'available' ? null : 'keyword search (BM25)',
        jobs: jobs.kind,
        // Documents are indexed for keyword search only until embeddings exist (docs/documents.md).
        document_embeddings: { status: 'keyword-only' as const, reason: 'no embedding model is configured (EMBEDDING_MODEL): documents are indexed for keyword search only' },
      };
      const down = Object.entries(checks)
        .filter(([, state]) => state === 'down')
        .map(([name]) => name);
      if (down.length > 0) {
        body.status = 'unavailable';
        return sendProblem(reply, problem(request, 503, `Not ready: ${down.join(', ')} ${down.length > 1 ? 'are' : 'is'} down`, body));
      }
      return body;
    },
  );
};

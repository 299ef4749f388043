import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance } from 'fastify';
import { NotFoundError } from '../lib/errors.js';
import { toOpenAiError } from '../modules/openai/openai.errors.js';
import { authenticatedSubtree, type RouteRegistration } from '../plugins/auth.js';
import type { SubtreeRoutes } from './api-v1.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The OpenAI-compatible `/v1` subtree's routes, collected from the modules and registered by `registerV1`. */
    v1: SubtreeRoutes;
  }
}

/** JSON and event streams only, like /api/v1: nothing may load, frame or be framed. */
export const V1_HEADERS = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
} as const;

/** Decorates `app.v1` before the modules register; the OpenAI-compatible module adds its routes to it. */
export const v1Routes = fp(
  async (app) => {
    const registrations: RouteRegistration[] = [];
    app.decorate('v1', {
      routes(plugin, options) {
        registrations.push(async (subtree) => subtree.register(plugin, options));
      },
      registrations: () => registrations,
    } satisfies SubtreeRoutes);
  },
  { name: 'v1-routes', dependencies: ['auth'] },
);

/**
 * The OpenAI-compatible subtree at `/v1` (CONTRACT §9), where OpenAI clients expect it (`base_url=http://host:8000/v1`).
 * It owns its authentication (API keys `cdsa_...` only, the scope each route names in `config.apiKeyScope`), its
 * headers, and its errors: always OpenAI's `{"error": {message, type, param, code}}`, never RFC 9457 — rate limits,
 * body limits, malformed JSON and unknown paths included.
 */
export async function registerV1(app: FastifyInstance): Promise<void> {
  await app.register(
    async (v1) => {
      v1.setErrorHandler((error: FastifyError, request, reply) => {
        const mapped = toOpenAiError(error);
        if (mapped.unexpected) request.log.error({ err: error }, 'unhandled error');
        else if (mapped.status >= 500) request.log.warn({ err: error }, 'dependency failure');
        for (const [name, value] of Object.entries(mapped.headers)) reply.header(name, value);
        return reply.code(mapped.status).type('application/json; charset=utf-8').send(mapped.body);
      });
      // Unknown paths under /v1 answer in OpenAI's shape too (the console's fallback would otherwise take GETs).
      // OPTIONS stays with CORS preflight.
      v1.route({
        method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
        url: '/*',
        config: { public: true },
        schema: { hide: true },
        handler: async (request) => {
          throw new NotFoundError(`Route ${request.method} ${request.url.split('?')[0]}`);
        },
      });
      await v1.register(
        authenticatedSubtree({
          name: 'v1',
          authenticate: app.apiKeys.authenticator('chat'),
          headers: V1_HEADERS,
          routes: app.v1.registrations(),
        }),
      );
    },
    { prefix: '/v1' },
  );
}

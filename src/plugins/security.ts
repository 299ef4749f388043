import fp from 'fastify-plugin';
import helmet from '@fastify/helmet';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { RateLimitedError } from '../lib/errors.js';

/** Security headers, CORS and the global rate limit (shared through Redis when several instances run). */
export const securityPlugin = fp(
  async (app) => {
    const { config } = app;
    await app.register(helmet, {
      // API responses are JSON: nothing may load, frame or be framed. /docs sets its own CSP.
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      // HSTS only means something over TLS; it is added below when the request came over HTTPS.
      hsts: false,
      crossOriginResourcePolicy: { policy: 'same-origin' },
    });
    app.addHook('onRequest', async (request, reply) => {
      if (request.protocol === 'https') reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
    });

    // CORS preflights carry no credentials by design; the catch-all OPTIONS route @fastify/cors adds is public.
    app.addHook('onRoute', (route) => {
      if (route.method === 'OPTIONS' && route.url === '*') route.config = { ...route.config, public: true };
    });
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? true : config.corsOrigins.length > 0 ? config.corsOrigins : false,
      credentials: false,
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'last-event-id'],
      exposedHeaders: ['x-request-id', 'retry-after'],
      maxAge: 600,
    });

    await app.register(rateLimit, {
      global: true,
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.periodSeconds * 1000,
      redis: app.infra.redis,
      nameSpace: `${config.redisPrefix}:rl:`,
      // Redis down must not take the API down with it; requests pass un-counted until it returns.
      skipOnError: true,
      // Health probes and metrics scrapes are not clients: those routes opt out with `config.rateLimit: false`.
      errorResponseBuilder: (_request, context) =>
        new RateLimitedError(`Rate limit exceeded: ${context.max} requests per ${context.after}`, context.ttl / 1000),
    });
  },
  { name: 'security', dependencies: ['infra', 'auth'] },
);

import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { randomUUID } from 'node:crypto';
import type { AppConfig } from './config.js';
import type { Database } from './db/client.js';
import { serializeErrorForLog } from './lib/log-errors.js';
import type { ResolvedSecrets } from './lib/secrets.js';
import { TEXT_FORMATS } from './lib/text-formats.js';
import { authPlugin } from './plugins/auth.js';
import { infraPlugin } from './plugins/infra.js';
import { metricsPlugin } from './plugins/metrics.js';
import { problemDetailsPlugin } from './plugins/problem-details.js';
import { requestHygienePlugin } from './plugins/request-hygiene.js';
import { securityPlugin } from './plugins/security.js';
import { swaggerPlugin } from './plugins/swagger.js';
import { registerModules } from './modules/index.js';

export interface BuildAppOptions {
  config: AppConfig;
  secrets: ResolvedSecrets;
  /** An already-open database (tests); otherwise opened from the configuration. */
  database?: Database;
  logger?: FastifyServerOptions['logger'];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Log redaction: credentials and secret values never reach the logs. */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.new_password',
  '*.current_password',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.ticket',
  '*.secret',
  '*.client_secret',
  '*.api_key',
  '*.apiKey',
  '*.value',
  'password',
  'token',
  'secret',
  'value',
];

export function loggerOptions(config: AppConfig): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: LOG_REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      // Statements, never their bound parameters (src/lib/log-errors.ts).
      err: serializeErrorForLog,
      // The path only: query strings can carry single-use stream tickets.
      req: (request: { method: string; url: string; id: string }) => ({
        method: request.method,
        url: request.url.split('?')[0],
        id: request.id,
      }),
    },
  };
}

/** The whole service as one Fastify instance; `server.ts` listens on it, tests inject into it. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimitBytes,
    // Opening and migrating the database is part of plugin start-up; on a loaded machine it can take a while.
    pluginTimeout: 120_000,
    trustProxy: config.trustProxy,
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    // In-flight requests get this long to finish on shutdown; SSE streams are ended explicitly.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // Requests are logged at debug (below): at the default level the log carries warnings and errors, not traffic.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: {
      customOptions: {
        // Unknown fields are an error (422), not silently dropped: no mass assignment by accident.
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
        allErrors: true,
        // What text may contain: `SingleLineText()` / `MultiLineText()` in the schemas.
        formats: TEXT_FORMATS,
      },
    },
    // The response serializer meets the same schemas (a tool's implementation is echoed back).
    serializerOpts: { ajv: { formats: TEXT_FORMATS } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON only: text/plain bodies are refused with 415 rather than parsed as strings.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request) => {
    request.log.debug({ req: request }, 'incoming request');
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime }, 'request completed');
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(problemDetailsPlugin);
  await app.register(requestHygienePlugin);
  // First of the route-adding plugins: every route after it must be public or inside an authenticated subtree.
  await app.register(authPlugin);
  await app.register(infraPlugin, { config, secrets: options.secrets, database: options.database });
  await app.register(metricsPlugin);
  await app.register(securityPlugin);
  await app.register(swaggerPlugin);
  await registerModules(app);
  return app;
}

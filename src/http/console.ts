import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The web console (CONTRACT §11): the single-page application built into `console/dist`, served at `/` by this
 * process. It is a subtree of its own, like `/api/v1`: its routes are public files (the API behind them does the
 * authentication) and it sends its own Content-Security-Policy — scripts, styles and connections from this origin
 * only, no inline script, no eval — while every API route keeps the app-wide `default-src 'none'`.
 */
export const CONSOLE_HEADERS = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    // The TOTP enrolment QR code is a data: URL from the API.
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
} as const;

/** Paths the console never answers for, even when nothing else matched: they stay the API's 404 problems. */
export const RESERVED_PREFIXES = ['/api', '/v1', '/mcp', '/health', '/docs', '/openapi.json', '/metrics'] as const;

export const CONSOLE_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'console', 'dist');

function reserved(url: string): boolean {
  const pathname = url.split('?')[0];
  return RESERVED_PREFIXES.some((prefix) => pathname === prefix || pathname.startsWith(`${prefix}/`));
}

/** A client route of the SPA (`/chat`, `/documents/<id>`): no file extension in its last segment. */
function clientRoute(url: string): boolean {
  const last = url.split('?')[0].split('/').pop() ?? '';
  return !last.includes('.');
}

function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html');
}

const ServiceInfo = Type.Object({
  name: Type.String(),
  version: Type.String(),
  links: Type.Object({ docs: Type.String(), openapi: Type.String(), health: Type.String(), api: Type.String(), console: Type.String() }),
});

export interface ConsoleOptions {
  /** The built console; `console/dist` of this checkout unless a test says otherwise. */
  root?: string;
}

export async function consoleSubtree(app: FastifyInstance, options: ConsoleOptions = {}): Promise<void> {
  const root = options.root ?? CONSOLE_DIST;
  const built = fs.existsSync(path.join(root, 'index.html'));
  if (!built) app.log.warn({ root }, 'the web console is not built (run npm run build); / answers with the service description only');

  app.addHook('onRoute', (route) => {
    // Files and the page shell need no credentials; rate limits are for the API the page then calls.
    route.config = { ...route.config, public: true, rateLimit: false };
  });
  app.addHook('onRequest', async (request, reply) => {
    // An unmatched API path reaches the fallback below and is answered as the API's 404: it keeps the API's headers.
    if (!reserved(request.url)) void reply.headers(CONSOLE_HEADERS);
  });

  const sendShell = (reply: FastifyReply) =>
    reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').sendFile('index.html', root);

  if (built) {
    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      wildcard: false,
      index: false,
      serve: true,
      decorateReply: true,
      // Our own Cache-Control below, not send's default max-age=0.
      cacheControl: false,
      setHeaders(res, file) {
        // Vite names every asset by its content hash: they never change, index.html always may.
        const immutable = file.includes(`${path.sep}assets${path.sep}`);
        res.setHeader('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }

  app.get(
    '/',
    {
      schema: {
        tags: ['health'],
        summary: 'The web console for browsers; the service name, version and links for everyone else',
        response: { 200: ServiceInfo },
      },
    },
    async (request, reply) => {
      if (built && wantsHtml(request)) return sendShell(reply);
      return {
        name: 'CDSA — Confidential Data Steward Agent',
        version: app.config.version,
        links: { docs: '/docs', openapi: '/openapi.json', health: '/health', api: '/api/v1', console: '/' },
      };
    },
  );

  app.get(
    '/console-settings.json',
    {
      schema: {
        hide: true,
        response: { 200: Type.Object({ oidc: Type.Boolean(), registration: Type.Union([Type.Literal('open'), Type.Literal('closed')]) }) },
      },
    },
    async () => ({ oidc: Boolean(app.config.oidc), registration: app.config.registrationMode }),
  );

  // Client routes of the SPA get the page shell; anything else unmatched (an API path, a missing file) is a 404.
  app.get('/*', { schema: { hide: true } }, async (request, reply) => {
    if (!built || reserved(request.url) || !clientRoute(request.url) || !wantsHtml(request)) return reply.callNotFound();
    return sendShell(reply);
  });
}

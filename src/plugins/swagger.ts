import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { completeOpenApiDocument, type RouteDocMeta } from './openapi-document.js';

/** OpenAPI 3.1 generated from the same TypeBox schemas that validate and serialise each route. */
export const swaggerPlugin = fp(
  async (app) => {
    const routeMeta = new Map<string, RouteDocMeta>();
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'CDSA — Confidential Data Steward Agent',
          version: app.config.version,
          description:
            'LLM agents on sensitive data with human approvals, a tamper-evident audit trail, encrypted secrets and PII redaction. Errors are RFC 9457 problem details on /api/v1; the OpenAI-compatible /v1 answers errors in OpenAI\'s shape.',
        },
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            // The OpenAI-compatible /v1 takes API keys (`Authorization: Bearer cdsa_...`), not access tokens.
            apiKeyAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'cdsa_ API key' },
          },
        },
        security: [{ bearerAuth: [] }],
      },
      transform: ({ schema, url, route }) => {
        const config = (route.config ?? {}) as { public?: boolean; requires?: RouteDocMeta['requires'] };
        const transformed = { ...(schema ?? {}) } as Record<string, unknown>;
        // Public routes need no token; say so in the document.
        if (config.public) transformed.security = [];
        const path = url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
        for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
          routeMeta.set(`${method} ${path}`, { public: config.public === true, requires: config.requires });
        }
        return { schema: transformed, url };
      },
      transformObject: (documentObject) =>
        'openapiObject' in documentObject
          ? (completeOpenApiDocument(documentObject.openapiObject as Record<string, unknown>, routeMeta) as typeof documentObject.openapiObject)
          : documentObject.swaggerObject,
    });
    // The documentation is public: a subtree of its own, with swagger-ui's CSP for its page.
    await app.register(async (docs) => {
      docs.addHook('onRoute', (route) => {
        route.config = { ...route.config, public: true };
      });
      await docs.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { deepLinking: true } });
    });
    app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());
  },
  { name: 'swagger', dependencies: ['infra', 'auth'] },
);

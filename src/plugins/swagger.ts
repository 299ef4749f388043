import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

/** OpenAPI 3.1 generated from the same TypeBox schemas that validate and serialise each route. */
export const swaggerPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'CDSA — Confidential Data Steward Agent',
          version: app.config.version,
          description:
            'LLM agents on sensitive data with human approvals, a tamper-evident audit trail, encrypted secrets and PII redaction. Errors are RFC 9457 problem details.',
        },
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        },
        security: [{ bearerAuth: [] }],
      },
      transform: ({ schema, url, route }) => {
        // Public routes need no token; say so in the document.
        const transformed = { ...(schema ?? {}) } as Record<string, unknown>;
        if (route.config && (route.config as { public?: boolean }).public) transformed.security = [];
        return { schema: transformed, url };
      },
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

import type { FastifyInstance } from 'fastify';
import { apiV1Routes, registerApiV1 } from '../http/api-v1.js';
import { consoleSubtree } from '../http/console.js';
import { mcpSubtree } from '../http/mcp.js';
import { registerV1, v1Routes } from '../http/v1.js';
import { approvalsModule } from './approvals/index.js';
import { apiKeysModule } from './api-keys/index.js';
import { auditModule } from './audit/index.js';
import { identityModule } from './auth/index.js';
import { chatModule } from './chat/index.js';
import { documentsModule } from './documents/index.js';
import { healthRoutes } from './health/health.routes.js';
import { llmModule } from './llm/index.js';
import { mcpModule } from './mcp/index.js';
import { notificationsModule } from './notifications/index.js';
import { openaiModule } from './openai/index.js';
import { toolsModule } from './tools/index.js';
import { vaultModule } from './vault/index.js';

/**
 * The wiring, in one visible order. Each domain module is a Fastify plugin that creates its service, decorates the
 * app with it (typed through `declare module 'fastify'` in its index.ts), and adds its routes to `app.apiV1`.
 *
 * A module uses the modules above it directly (`app.audit`; its plugin `dependencies` make a wrong order fail at
 * start-up). The edges that point down the list go through `neighbour(app, name)` (./wiring.ts), checked when the
 * app is ready: audit, identity, vault, tools and approvals → notifications; tools → vault (a getter by its
 * service's choice); tools → approvals; tools → mcp; chat → chatTools.
 *
 * Routes are registered last, inside the `/api/v1` subtree that owns their authentication and headers, and the
 * OpenAI-compatible `/v1` subtree (src/http/v1.ts) with its own API-key authentication and error shape; then the web
 * console (src/http/console.ts), a subtree with its own headers.
 */
export async function registerModules(app: FastifyInstance): Promise<void> {
  await app.register(healthRoutes);
  await app.register(apiV1Routes);
  await app.register(v1Routes);
  await app.register(auditModule);
  await app.register(identityModule);
  await app.register(apiKeysModule);
  await app.register(notificationsModule);
  await app.register(vaultModule);
  await app.register(llmModule);
  await app.register(chatModule);
  await app.register(toolsModule);
  await app.register(approvalsModule);
  await app.register(documentsModule);
  await app.register(mcpModule);
  await app.register(openaiModule);
  await registerApiV1(app);
  // CDSA as an MCP server (src/http/mcp.ts): `/mcp`, a subtree with API-key authentication of its own.
  await app.register(mcpSubtree, {
    server: () => ({ version: app.config.version, documents: app.documents, tools: app.tools.engine.served, displayNames: (ids) => app.users.displayNames(ids) }),
  });
  // The OpenAI-compatible API at /v1 (src/http/v1.ts): API keys only, OpenAI's error shape.
  await registerV1(app);
  // The web console last: its fallback for client routes must never shadow a route above.
  await app.register(consoleSubtree);
}

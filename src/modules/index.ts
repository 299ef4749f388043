import type { FastifyInstance } from 'fastify';
import { approvalsModule } from './approvals/index.js';
import { auditModule } from './audit/index.js';
import { identityModule } from './auth/index.js';
import { chatModule } from './chat/index.js';
import { healthRoutes } from './health/health.routes.js';
import { llmModule } from './llm/index.js';
import { notificationsModule } from './notifications/index.js';
import { toolsModule } from './tools/index.js';
import { vaultModule } from './vault/index.js';

/**
 * Each domain module is a Fastify plugin that creates its service, decorates the app with it (for the modules that
 * depend on it) and registers its routes under /api/v1. Order follows the dependencies.
 */
export async function registerModules(app: FastifyInstance): Promise<void> {
  await app.register(healthRoutes);
  await app.register(auditModule);
  await app.register(identityModule);
  await app.register(notificationsModule);
  await app.register(vaultModule);
  await app.register(llmModule);
  await app.register(chatModule);
  await app.register(toolsModule);
  await app.register(approvalsModule);
}

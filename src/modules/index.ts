import type { FastifyInstance } from 'fastify';
import { auditModule } from './audit/index.js';
import { healthRoutes } from './health/health.routes.js';

/**
 * Each domain module is a Fastify plugin that creates its service, decorates the app with it (for the modules that
 * depend on it) and registers its routes under /api/v1. Order follows the dependencies.
 */
export async function registerModules(app: FastifyInstance): Promise<void> {
  await app.register(healthRoutes);
  await app.register(auditModule);
}

import fp from 'fastify-plugin';
import { createAuditRepository } from './audit.repository.js';
import { createAuditRecorder, type AuditRecorder } from './audit.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    audit: AuditRecorder;
  }
}

export const auditModule = fp(
  async (app) => {
    const repository = createAuditRepository();
    app.decorate('audit', createAuditRecorder({ db: app.infra.database.db, repository }));
  },
  { name: 'module-audit', dependencies: ['infra'] },
);

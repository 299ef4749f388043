import fp from 'fastify-plugin';
import { registerApprovalJobs } from './approvals.jobs.js';
import { createApprovalsRepository } from './approvals.repository.js';
import { approvalRoutes } from './approvals.routes.js';
import { neighbour } from '../wiring.js';
import { approvalArgsAad, createApprovalService, type ApprovalService } from './approvals.service.js';

export { APPROVAL_EXECUTE_JOB, APPROVAL_EXPIRE_JOB, type ApprovalService, type ApprovalView } from './approvals.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    approvals: ApprovalService;
  }
}

/** How often each job-processing instance looks for approvals whose jobs were lost (crash recovery). */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * The human approval chain. It gates the tool engine (module-tools), which it calls back to run an approved direct
 * call (`approvals.execute`) and to close the execution of a rejected or expired one.
 */
export const approvalsModule = fp(
  async (app) => {
    const service = createApprovalService({
      db: app.infra.database.db,
      repository: createApprovalsRepository(),
      audit: app.audit,
      fieldCipher: app.fieldCipher,
      jobs: app.infra.jobs,
      notifier: neighbour(app, 'notifications'),
      activeUserIds: (roles) => app.users.activeUserIds(roles),
      displayNames: (ids) => app.users.displayNames(ids),
      lifecycle: app.tools.engine.lifecycle,
      ttlSeconds: app.config.approvalTtlSeconds,
      logger: app.log,
    });
    app.decorate('approvals', service);
    app.fieldCipher.registerEncryptedColumn({
      name: 'approvals.encrypted_tool_args',
      table: 'approvals',
      column: 'encrypted_tool_args',
      aad: (row) => approvalArgsAad(row.id),
    });
    registerApprovalJobs(app.infra.jobs, service, app.tools.engine);

    let timer: NodeJS.Timeout | undefined;
    let sweeping: Promise<void> | undefined;
    const sweep = () => {
      sweeping ??= (async () => {
        try {
          // Calls cut off by a crash are resolved on every instance's heartbeat (module-tools), not here.
          const result = await service.sweep();
          if (result.expired + result.requeued > 0) app.log.info(result, 'approval sweep');
        } catch (error) {
          app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'approval sweep failed');
        } finally {
          sweeping = undefined;
        }
      })();
      return sweeping;
    };
    app.addHook('onReady', async () => {
      if (!app.config.processJobs) return;
      await sweep();
      timer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
      timer.unref();
    });
    app.addHook('preClose', async () => {
      clearInterval(timer);
      await sweeping;
    });

    app.apiV1.routes(approvalRoutes, { approvals: service });
  },
  { name: 'module-approvals', dependencies: ['infra', 'auth', 'module-audit', 'module-identity', 'module-notifications', 'module-vault', 'module-tools'] },
);

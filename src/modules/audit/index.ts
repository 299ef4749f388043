import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { createCheckpointService, type CheckpointService } from './audit.checkpoints.js';
import { createAuditExporter, type AuditExporter } from './audit.export.js';
import { registerAuditJobs, scheduleNextCheckpoint } from './audit.jobs.js';
import { createAuditFingerprinter } from './audit.privacy.js';
import { createAuditQueryService, type AuditQueryService } from './audit.query.js';
import { createAuditReportService, type AuditReportService, type ReportNotification } from './audit.reports.js';
import { createAuditRepository } from './audit.repository.js';
import { auditRoutes } from './audit.routes.js';
import { neighbour } from '../wiring.js';
import { createAuditRecorder, type AuditRecorder } from './audit.service.js';
import { createAuditSigner, type AuditSigner, type AuditVerifyingKey } from './audit.signing.js';
import { createAuditVerifier, type AuditVerifier } from './audit.verify.js';
import { keyUnkeyedEvents } from './audit.keying.js';
import { createAuditMacKeyring } from './audit.mac.js';
import { createFileSink, createHttpSink, createSinkSet, type AuditSink } from './audit.sink.js';

export type { AuditEventInput, AuditRecorder } from './audit.service.js';
export { promptDigest, type PromptDigest } from './audit.privacy.js';

/** The audit trail's operations beyond recording: used by the routes and the `cdsa audit` commands. */
export interface AuditTrail {
  queries: AuditQueryService;
  verifier: AuditVerifier;
  /** A verifier that also trusts these keys (retired signing keys, keys of checkpoint files). */
  createVerifier(extraKeys: readonly AuditVerifyingKey[]): AuditVerifier;
  checkpoints: CheckpointService;
  reports: AuditReportService;
  exporter: AuditExporter;
  signer: AuditSigner;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Records audit events (inside the caller's transaction, or standalone); see audit.service.ts. */
    audit: AuditRecorder;
    auditTrail: AuditTrail;
  }
}

/** The notifications module registers after this one, so it is looked up when a report completes, not now. */
function notifierOf(app: FastifyInstance) {
  const notifications = neighbour(app, 'notifications');
  return async (notification: ReportNotification): Promise<void> => {
    await notifications().notify(notification);
  };
}

/** The identity module registers after this one too; reports ask it for names when they are generated. */
function namesOf(app: FastifyInstance) {
  const users = neighbour(app, 'users');
  return (ids: readonly string[]) => users().displayNames(ids);
}

export const auditModule = fp(
  async (app) => {
    const db = app.infra.database.db;
    const repository = createAuditRepository();
    const keyring = createAuditMacKeyring(app.secrets.auditHmacKeys);
    const configuredSinks: AuditSink[] = [];
    if (app.config.auditSinkFile) configuredSinks.push(createFileSink(app.config.auditSinkFile));
    const { url, token, timeoutMs } = app.config.auditSink;
    if (url) configuredSinks.push(createHttpSink({ url, token, timeoutMs }));
    const sinks = createSinkSet(configuredSinks, app.log);
    const recorder = createAuditRecorder({
      db,
      repository,
      keyring,
      sinks,
      fingerprinter: createAuditFingerprinter(app.secrets.jwtSecretKey),
      logPrompts: app.config.auditLogPrompts,
    });
    const signer = createAuditSigner(app.secrets.auditSigningKeyPem);
    const verifier = createAuditVerifier({ db, repository, keys: [signer.verifyingKey], keyring });
    const checkpoints = createCheckpointService({ db, repository, recorder, signer });
    const reports = createAuditReportService({
      db,
      repository,
      recorder,
      verifier,
      checkpoints,
      signer,
      jobs: app.infra.jobs,
      notify: notifierOf(app),
      namesOf: namesOf(app),
      logger: app.log,
    });
    const exporter = createAuditExporter({ db, repository, recorder, signer, keyring });
    const queries = createAuditQueryService({ db, repository });

    app.decorate('audit', recorder);
    const createVerifier = (extraKeys: readonly AuditVerifyingKey[]) =>
      createAuditVerifier({ db, repository, keys: [signer.verifyingKey, ...extraKeys], keyring });
    app.decorate('auditTrail', { queries, verifier, createVerifier, checkpoints, reports, exporter, signer });

    registerAuditJobs({ jobs: app.infra.jobs, reports, checkpoints, checkpointIntervalSeconds: app.config.auditCheckpointIntervalSeconds });
    // Rows written before the chain had a MAC key get one, once (audit.keying.ts).
    app.addHook('onReady', async () => {
      const keyed = await keyUnkeyedEvents({ db, repository, keyring, recorder });
      if (keyed.keyed > 0) app.log.warn(keyed, 'audit events written before the chain was keyed now carry a MAC (cut-over recorded as AUDIT_CHAIN_KEYED)');
    });
    app.addHook('onReady', async () => {
      if (!app.config.processJobs) return;
      // Not fatal: the next instance start (or the next run of the series) schedules it again.
      await scheduleNextCheckpoint(app.infra.jobs, app.config.auditCheckpointIntervalSeconds).catch((error: unknown) =>
        app.log.warn({ err: error }, 'could not schedule the periodic audit checkpoint'),
      );
    });
    // Standalone events still queued are written before the database closes.
    app.addHook('preClose', async () => {
      await recorder.drain();
    });
    app.addHook('onClose', async () => {
      await sinks.close();
    });

    app.apiV1.routes(auditRoutes, { queries, verifier, reports, checkpoints });
  },
  { name: 'module-audit', dependencies: ['infra', 'auth'] },
);

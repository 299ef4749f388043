import type { JobQueue } from '../../lib/infra/jobs.js';
import type { VaultService } from './vault.service.js';

export const VAULT_PURGE_JOB = 'vault.purge-deleted';
const SWEEP_INTERVAL_MS = 3_600_000;

/** One job id per hour: every instance may schedule the sweep, it runs once (BullMQ keeps finished ids an hour). */
function sweepJobId(at: number): string {
  return `vault-purge-${Math.floor(at / SWEEP_INTERVAL_MS)}`;
}

/**
 * The purge of soft-deleted secrets: an hourly sweep that schedules its successor, started once per process.
 * Idempotent: it removes whatever is past the retention period at the time it runs.
 */
export function registerVaultJobs(jobs: JobQueue, vault: Pick<VaultService, 'purgeDeleted'>, now: () => number = Date.now) {
  const scheduleNext = async () => {
    const next = (Math.floor(now() / SWEEP_INTERVAL_MS) + 1) * SWEEP_INTERVAL_MS;
    await jobs.enqueue(VAULT_PURGE_JOB, {}, { jobId: sweepJobId(next), delayMs: next - now() });
  };
  jobs.register(VAULT_PURGE_JOB, async () => {
    try {
      await vault.purgeDeleted();
    } finally {
      await scheduleNext();
    }
  });
  return {
    /** Runs a sweep now (at start-up), which keeps the hourly chain going. */
    async start(): Promise<void> {
      await jobs.enqueue(VAULT_PURGE_JOB, {}, { jobId: sweepJobId(now()) });
    },
  };
}

import type { JobQueue } from '../../lib/infra/jobs.js';
import type { NotificationService } from './notifications.service.js';

export const PURGE_JOB = 'notifications.purge';
export const PURGE_INTERVAL_MS = 60 * 60 * 1000;

/** One job id per interval: every instance schedules the same next run, and the queue keeps only one of them. */
function nextRun(now: number, intervalMs: number): { jobId: string; delayMs: number } {
  const slot = Math.floor(now / intervalMs) + 1;
  return { jobId: `notifications-purge-${slot}`, delayMs: slot * intervalMs - now };
}

export async function schedulePurge(jobs: JobQueue, intervalMs = PURGE_INTERVAL_MS, now = Date.now()): Promise<void> {
  const { jobId, delayMs } = nextRun(now, intervalMs);
  await jobs.enqueue(PURGE_JOB, {}, { jobId, delayMs, attempts: 3 });
}

/**
 * A repeating purge of expired notifications: each run schedules the next one first (so a failing purge does not
 * end the chain), then deletes. Idempotent: deleting what is already gone deletes nothing.
 */
export function registerPurgeJob(
  jobs: JobQueue,
  service: Pick<NotificationService, 'purgeExpired'>,
  logger: { info(obj: object, msg: string): void },
  intervalMs = PURGE_INTERVAL_MS,
): void {
  jobs.register(PURGE_JOB, async () => {
    await schedulePurge(jobs, intervalMs);
    const deleted = await service.purgeExpired();
    if (deleted > 0) logger.info({ deleted }, 'expired notifications purged');
  });
}

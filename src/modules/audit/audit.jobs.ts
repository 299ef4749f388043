import type { JobQueue } from '../../lib/infra/jobs.js';
import type { CheckpointService } from './audit.checkpoints.js';
import { AUDIT_REPORT_JOB, REPORT_JOB_ATTEMPTS, type AuditReportService, type ReportJobData } from './audit.reports.js';

export const AUDIT_CHECKPOINT_JOB = 'audit.checkpoint';

interface CheckpointJobData {
  slot: number;
}

/**
 * Enqueues the periodic checkpoint for the next interval boundary. The job id names the slot, so every instance
 * (and every restart) asking for the same slot adds one job; each run schedules the slot after it.
 * BullMQ ids may not contain ':', hence the dots.
 */
export async function scheduleNextCheckpoint(
  jobs: Pick<JobQueue, 'enqueue'>,
  intervalSeconds: number,
  now: Date = new Date(),
  afterSlot = 0,
): Promise<void> {
  if (intervalSeconds <= 0) return;
  const intervalMs = intervalSeconds * 1000;
  // A timer may fire a hair before the wall clock reaches its slot; the next slot is always after the current one.
  const slot = Math.max(Math.floor(now.getTime() / intervalMs) + 1, afterSlot + 1);
  await jobs.enqueue<CheckpointJobData>(
    AUDIT_CHECKPOINT_JOB,
    { slot },
    { jobId: `${AUDIT_CHECKPOINT_JOB}.${intervalSeconds}.${slot}`, delayMs: Math.max(0, slot * intervalMs - now.getTime()), attempts: 3, backoffMs: 5_000 },
  );
}

export interface AuditJobDeps {
  jobs: JobQueue;
  reports: Pick<AuditReportService, 'generate' | 'markFailed'>;
  checkpoints: Pick<CheckpointService, 'createPeriodic'>;
  checkpointIntervalSeconds: number;
}

export function registerAuditJobs({ jobs, reports, checkpoints, checkpointIntervalSeconds }: AuditJobDeps): void {
  jobs.register<ReportJobData>(AUDIT_REPORT_JOB, async (data, context) => {
    try {
      await reports.generate(data.report_id);
    } catch (error) {
      if (context.attempt < REPORT_JOB_ATTEMPTS) throw error;
      await reports.markFailed(data.report_id, error);
    }
  });

  jobs.register<CheckpointJobData>(AUDIT_CHECKPOINT_JOB, async (data) => {
    // The next run is scheduled first, so one failing run does not end the series.
    await scheduleNextCheckpoint(jobs, checkpointIntervalSeconds, new Date(), data.slot);
    await checkpoints.createPeriodic();
  });
}

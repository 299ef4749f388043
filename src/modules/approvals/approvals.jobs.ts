import type { JobQueue } from '../../lib/infra/jobs.js';
import { APPROVAL_EXECUTE_JOB, APPROVAL_EXPIRE_JOB, type ApprovalService } from './approvals.service.js';

export interface ApprovedCallRunner {
  runApproved(approvalId: string): Promise<void>;
}

interface ApprovalJobData {
  approvalId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function approvalIdOf(data: unknown): string | undefined {
  const id = (data as Partial<ApprovalJobData> | null)?.approvalId;
  return typeof id === 'string' && UUID.test(id) ? id : undefined;
}

/** Thin handlers: the service and the engine are idempotent, so a retried or duplicated job changes nothing. */
export function registerApprovalJobs(jobs: Pick<JobQueue, 'register'>, approvals: Pick<ApprovalService, 'expire'>, runner: ApprovedCallRunner): void {
  jobs.register<unknown>(APPROVAL_EXPIRE_JOB, async (data) => {
    const id = approvalIdOf(data);
    if (id) await approvals.expire(id);
  });
  jobs.register<unknown>(APPROVAL_EXECUTE_JOB, async (data) => {
    const id = approvalIdOf(data);
    if (id) await runner.runApproved(id);
  });
}

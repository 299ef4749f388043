import { describe, expect, it } from 'vitest';
import type { JobHandler, JobOptions, JobQueue } from '../../lib/infra/jobs.js';
import { registerVaultJobs, VAULT_PURGE_JOB } from './vault.jobs.js';

function fakeQueue() {
  const handlers = new Map<string, JobHandler<unknown>>();
  const enqueued: { name: string; options: JobOptions }[] = [];
  const queue: JobQueue = {
    kind: 'in-process',
    register: (name, handler) => {
      handlers.set(name, handler as JobHandler<unknown>);
    },
    enqueue: async (name, _data, options = {}) => {
      enqueued.push({ name, options });
    },
    start: async () => undefined,
    close: async () => undefined,
  };
  return { queue, handlers, enqueued };
}

describe('vault purge sweep', () => {
  const hour = 3_600_000;
  const at = 1_000 * hour + 15 * 60_000;

  it('starts with a sweep now and, after each run, schedules the next at the top of the hour', async () => {
    const { queue, handlers, enqueued } = fakeQueue();
    let purges = 0;
    const jobs = registerVaultJobs(queue, { purgeDeleted: async () => ++purges }, () => at);
    await jobs.start();
    expect(enqueued).toEqual([{ name: VAULT_PURGE_JOB, options: { jobId: 'vault-purge-1000' } }]);
    await handlers.get(VAULT_PURGE_JOB)!({}, { id: 'vault-purge-1000', attempt: 1 });
    expect(purges).toBe(1);
    expect(enqueued[1]).toEqual({ name: VAULT_PURGE_JOB, options: { jobId: 'vault-purge-1001', delayMs: 45 * 60_000 } });
    // BullMQ refuses custom ids with ':'.
    expect(enqueued.every((job) => !job.options.jobId!.includes(':'))).toBe(true);
  });

  it('keeps the chain going when a purge fails, and reports the failure for a retry', async () => {
    const { queue, handlers, enqueued } = fakeQueue();
    registerVaultJobs(queue, { purgeDeleted: async () => Promise.reject(new Error('database down')) }, () => at);
    await expect(handlers.get(VAULT_PURGE_JOB)!({}, { id: 'x', attempt: 1 })).rejects.toThrow('database down');
    expect(enqueued).toEqual([{ name: VAULT_PURGE_JOB, options: { jobId: 'vault-purge-1001', delayMs: 45 * 60_000 } }]);
  });
});

import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../../../test/helpers/eventually.js';
import { createRedis } from './redis.js';
import { createBullJobQueue, createInProcessJobQueue, type JobQueue } from './jobs.js';

const queues: JobQueue[] = [];
afterEach(async () => {
  for (const queue of queues.splice(0)) await queue.close();
});

const implementations: [string, boolean, () => JobQueue | Promise<JobQueue>][] = [
  ['in-process', true, () => createInProcessJobQueue()],
  [
    'bullmq',
    Boolean(process.env.REDIS_URL),
    () =>
      createBullJobQueue({
        connection: createRedis(process.env.REDIS_URL!, { enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined }),
        prefix: `cdsa-test-${randomUUID().slice(0, 8)}`,
      }),
  ],
];

describe.each(implementations)('%s job queue', (_name, enabled, make) => {
  it.runIf(enabled)('runs a job with its data', async () => {
    const queue = await make();
    queues.push(queue);
    const seen: unknown[] = [];
    queue.register<{ n: number }>('test.echo', async (data) => {
      seen.push(data.n);
    });
    await queue.start();
    await queue.enqueue('test.echo', { n: 7 });
    await eventually(() => seen.length === 1);
    expect(seen).toEqual([7]);
  });

  it.runIf(enabled)('retries a failing job with backoff until it succeeds', async () => {
    const queue = await make();
    queues.push(queue);
    const attempts: number[] = [];
    queue.register('test.flaky', async (_data, context) => {
      attempts.push(context.attempt);
      if (context.attempt < 3) throw new Error('transient');
    });
    await queue.start();
    await queue.enqueue('test.flaky', {}, { attempts: 5, backoffMs: 20 });
    await eventually(() => attempts.length === 3);
    expect(attempts).toEqual([1, 2, 3]);
  });

  it.runIf(enabled)('delays a job and deduplicates by job id', async () => {
    const queue = await make();
    queues.push(queue);
    const ranAt: number[] = [];
    queue.register('test.delayed', async () => {
      ranAt.push(Date.now());
    });
    await queue.start();
    const enqueuedAt = Date.now();
    await queue.enqueue('test.delayed', {}, { delayMs: 300, jobId: 'same' });
    await queue.enqueue('test.delayed', {}, { delayMs: 300, jobId: 'same' });
    await eventually(() => ranAt.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(ranAt).toHaveLength(1);
    expect(ranAt[0]! - enqueuedAt).toBeGreaterThanOrEqual(250);
  });
});

import type { ConnectionOptions, Worker } from 'bullmq';
import { DEPENDENCY_RETRY_AFTER_SECONDS } from '../dependency-errors.js';
import { DependencyUnavailableError } from '../errors.js';

export interface JobOptions {
  /** Run no earlier than this many milliseconds from now (approval expiry uses it). */
  delayMs?: number;
  /** Deduplicates: a job with an id already waiting or running is not added again. */
  jobId?: string;
  attempts?: number;
  backoffMs?: number;
}

export interface JobContext {
  id: string;
  attempt: number;
}

export type JobHandler<T> = (data: T, context: JobContext) => Promise<void>;

/**
 * Background work. Handlers must be idempotent: a job may run more than once (retries, a worker crash mid-job).
 * Enqueue after the transaction that motivates the job commits.
 */
export interface JobQueue {
  readonly kind: 'in-process' | 'bullmq';
  register<T>(name: string, handler: JobHandler<T>): void;
  enqueue<T>(name: string, data: T, options?: JobOptions): Promise<void>;
  /** Starts processing registered handlers (serve by default, or the dedicated worker). */
  start(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_ATTEMPTS = 5;
const DEFAULT_BACKOFF_MS = 1_000;

interface PendingJob {
  id: string;
  name: string;
  data: unknown;
  attempt: number;
  attempts: number;
  backoffMs: number;
  timer?: NodeJS.Timeout;
}

export function createInProcessJobQueue(logger?: { error: (obj: object, msg: string) => void }): JobQueue {
  const handlers = new Map<string, JobHandler<unknown>>();
  const pending = new Map<string, PendingJob>();
  const running = new Set<Promise<void>>();
  let started = false;
  let closed = false;
  let counter = 0;

  const schedule = (job: PendingJob, delayMs: number) => {
    if (!started || closed) return;
    job.timer = setTimeout(() => run(job), Math.max(0, delayMs));
    job.timer.unref();
  };

  const run = (job: PendingJob) => {
    const handler = handlers.get(job.name);
    if (!handler || closed) return;
    job.attempt += 1;
    const execution = handler(job.data, { id: job.id, attempt: job.attempt })
      .then(() => {
        pending.delete(job.id);
      })
      .catch((error: unknown) => {
        if (job.attempt >= job.attempts) {
          pending.delete(job.id);
          logger?.error({ job: job.name, job_id: job.id, err: error }, 'job failed for good');
          return;
        }
        schedule(job, job.backoffMs * 2 ** (job.attempt - 1));
      })
      .finally(() => running.delete(execution));
    running.add(execution);
  };

  return {
    kind: 'in-process',
    register(name, handler) {
      handlers.set(name, handler as JobHandler<unknown>);
    },
    async enqueue(name, data, options = {}) {
      const id = options.jobId ?? `${name}:${Date.now()}:${++counter}`;
      if (pending.has(id)) return;
      const job: PendingJob = {
        id,
        name,
        data,
        attempt: 0,
        attempts: options.attempts ?? DEFAULT_ATTEMPTS,
        backoffMs: options.backoffMs ?? DEFAULT_BACKOFF_MS,
      };
      pending.set(id, job);
      schedule(job, options.delayMs ?? 0);
    },
    async start() {
      started = true;
      for (const job of pending.values()) if (!job.timer) schedule(job, 0);
    },
    async close() {
      closed = true;
      for (const job of pending.values()) clearTimeout(job.timer);
      await Promise.allSettled([...running]);
    },
  };
}

/** How long an enqueue waits for Redis. */
const ENQUEUE_TIMEOUT_MS = 2_000;

export async function createBullJobQueue(options: {
  connection: ConnectionOptions;
  prefix: string;
  concurrency?: number;
  logger?: { error: (obj: object, msg: string) => void; warn: (obj: object, msg: string) => void };
}): Promise<JobQueue> {
  // Loaded only when Redis is configured: the embedded setup never needs BullMQ, which takes a fifth of a second to load.
  const { Queue, Worker } = await import('bullmq');
  const queueName = 'cdsa-jobs';
  const handlers = new Map<string, JobHandler<unknown>>();
  const queue = new Queue(queueName, { connection: options.connection, prefix: options.prefix });
  let worker: Worker | undefined;
  queue.on('error', (error) => options.logger?.warn({ err: error.message }, 'job queue error'));
  // BullMQ checks the server (INFO) while it initialises; closing before that settles would leave the check's
  // promise to reject unhandled, so close() waits for it.
  const queueReady = queue.waitUntilReady().catch(() => undefined);
  return {
    kind: 'bullmq',
    register(name, handler) {
      handlers.set(name, handler as JobHandler<unknown>);
    },
    async enqueue(name, data, jobOptions = {}) {
      // While Redis is down BullMQ's connection queues the command until it returns: a request enqueueing a job is
      // answered with 503 naming Redis after a bound instead of waiting for it. The add may still land later (job
      // ids make that harmless), and the sweeps re-enqueue what was lost.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new DependencyUnavailableError('redis', 'Redis is unavailable right now; retry in a few seconds', DEPENDENCY_RETRY_AFTER_SECONDS)),
          ENQUEUE_TIMEOUT_MS,
        );
      });
      const adding = queue.add(name, data, {
        jobId: jobOptions.jobId,
        delay: jobOptions.delayMs,
        attempts: jobOptions.attempts ?? DEFAULT_ATTEMPTS,
        backoff: { type: 'exponential', delay: jobOptions.backoffMs ?? DEFAULT_BACKOFF_MS },
        removeOnComplete: { age: 3_600, count: 10_000 },
        removeOnFail: { age: 7 * 86_400 },
      });
      adding.catch(() => undefined);
      try {
        await Promise.race([adding, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async start() {
      if (worker) return;
      worker = new Worker(
        queueName,
        async (job) => {
          const handler = handlers.get(job.name);
          if (!handler) throw new Error(`no handler registered for job ${job.name}`);
          await handler(job.data, { id: job.id ?? '', attempt: job.attemptsMade + 1 });
        },
        { connection: options.connection, prefix: options.prefix, concurrency: options.concurrency ?? 10 },
      );
      worker.on('error', (error) => options.logger?.warn({ err: error.message }, 'job worker error'));
      worker.on('failed', (job, error) => {
        if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
          options.logger?.error({ job: job.name, job_id: job.id, err: error }, 'job failed for good');
        }
      });
    },
    async close() {
      await queueReady;
      if (worker) {
        await worker.waitUntilReady().catch(() => undefined);
        await worker.close();
      }
      await queue.close();
    },
  };
}

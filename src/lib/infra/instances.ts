import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { serviceInstances } from '../../db/schema/instances.js';

export interface InstanceLogger {
  warn(obj: object, msg: string): void;
}

/**
 * This process's lease in `service_instances`. Every `heartbeatMs` the lease is renewed and the `onTick` tasks run
 * (crash recovery of what gone instances left behind). An instance is gone when its lease is older than `leaseMs`;
 * time is the database's, so the instances' clocks need not agree.
 */
export interface InstanceRegistry {
  readonly id: string;
  readonly leaseMs: number;
  start(): Promise<void>;
  /** Stops renewing and removes the lease (a clean exit: nothing of ours is left running). */
  stop(): Promise<void>;
  /**
   * Whether this instance may judge others gone now: its own heartbeats have succeeded without a gap for a whole lease.
   * After a database outage every lease looks old; an instance that has just reconnected waits until the others had
   * the same chance to renew theirs, so a live instance is never taken for a dead one.
   */
  mayJudgeOthers(): boolean;
  /** Runs after each heartbeat (errors are logged, never thrown). */
  onTick(task: () => Promise<unknown>): void;
  /** One heartbeat and its tasks, now (tests, and the first one at start). */
  tick(): Promise<void>;
}

export function createInstanceRegistry(options: { db: Db; leaseMs: number; logger?: InstanceLogger; now?: () => number }): InstanceRegistry {
  const { db, leaseMs } = options;
  const now = options.now ?? Date.now;
  const id = randomUUID();
  const heartbeatMs = Math.max(200, Math.floor(leaseMs / 5));
  const tasks: (() => Promise<unknown>)[] = [];
  let timer: NodeJS.Timeout | undefined;
  let connectedSince: number | undefined;
  let ticking: Promise<void> | undefined;
  let stopped = false;

  async function heartbeat(): Promise<void> {
    try {
      await db
        .insert(serviceInstances)
        .values({ id, hostname: os.hostname(), pid: process.pid, startedAt: sql`now()`, heartbeatAt: sql`now()` })
        .onConflictDoUpdate({ target: serviceInstances.id, set: { heartbeatAt: sql`now()` } });
      connectedSince ??= now();
    } catch (error) {
      connectedSince = undefined;
      throw error;
    }
  }

  async function runTick(): Promise<void> {
    try {
      await heartbeat();
      for (const task of tasks) await task();
    } catch (error) {
      options.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'instance heartbeat or recovery failed');
    }
  }

  const registry: InstanceRegistry = {
    id,
    leaseMs,
    async start() {
      stopped = false;
      await runTick();
      timer = setInterval(() => {
        if (stopped) return;
        ticking ??= runTick().finally(() => {
          ticking = undefined;
        });
      }, heartbeatMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await ticking;
      await db
        .delete(serviceInstances)
        .where(eq(serviceInstances.id, id))
        .catch((error: unknown) => options.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not remove the instance lease'));
    },
    mayJudgeOthers() {
      return connectedSince !== undefined && now() - connectedSince >= leaseMs;
    },
    onTick(task) {
      tasks.push(task);
    },
    tick: runTick,
  };
  return registry;
}

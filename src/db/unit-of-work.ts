import type { Db, Tx } from './client.js';

/**
 * A transaction plus the work that must wait for its commit (publishing a notification, enqueueing a job).
 * Services that write take a UnitOfWork, so callers can group several services' writes — and the audit row — into
 * one commit.
 */
export interface UnitOfWork {
  tx: Tx;
  afterCommit(task: () => unknown): void;
}

export interface AfterCommitErrorLogger {
  warn(obj: object, msg: string): void;
}

export async function withTransaction<T>(
  db: Db,
  work: (uow: UnitOfWork) => Promise<T>,
  logger?: AfterCommitErrorLogger,
): Promise<T> {
  const tasks: (() => unknown)[] = [];
  const result = await db.transaction(async (tx) => work({ tx, afterCommit: (task) => tasks.push(task) }));
  for (const task of tasks) {
    try {
      await task();
    } catch (error) {
      // The commit stands; follow-up work is designed to be recovered (catch-up reads, idempotent sweeps).
      logger?.warn({ err: error }, 'after-commit task failed');
    }
  }
  return result;
}

/** Joins the caller's unit of work when given one, or runs a new transaction. */
export async function inUnitOfWork<T>(
  db: Db,
  uow: UnitOfWork | undefined,
  work: (uow: UnitOfWork) => Promise<T>,
  logger?: AfterCommitErrorLogger,
): Promise<T> {
  return uow ? work(uow) : withTransaction(db, work, logger);
}

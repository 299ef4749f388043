import type { FastifyInstance } from 'fastify';
import { createRuntimeApp } from '../runtime.js';

/**
 * Runs a one-off command against the same services the API uses (migrated database, audit, vault), then closes.
 * Its log goes to standard error: standard output carries only the command's output. Jobs are not processed here;
 * a running `serve` or `worker` picks up anything a command enqueues.
 */
export async function withApp<T>(task: (app: FastifyInstance) => Promise<T>): Promise<T> {
  const app = await createRuntimeApp({ logLevel: process.env.LOG_LEVEL ?? 'warn', processJobs: false }, { logStream: process.stderr });
  try {
    await app.ready();
    return await task(app);
  } finally {
    await app.close();
  }
}

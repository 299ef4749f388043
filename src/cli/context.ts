import type { FastifyInstance } from 'fastify';
import { createRuntimeApp, exitOnStartupError } from '../runtime.js';

/**
 * Runs a one-off command against the same services the API uses (migrated database, audit, vault), then closes.
 * Jobs are not processed here; a running `serve` or `worker` picks up anything a command enqueues.
 */
export async function withApp<T>(task: (app: FastifyInstance) => Promise<T>): Promise<T> {
  let app: FastifyInstance;
  try {
    app = await createRuntimeApp({ logLevel: process.env.LOG_LEVEL ?? 'warn', processJobs: false });
    await app.ready();
  } catch (error) {
    exitOnStartupError(error);
  }
  try {
    return await task(app);
  } finally {
    await app.close();
  }
}

/** Reads all of standard input (for --password-stdin); trailing newline removed. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

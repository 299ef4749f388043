import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { asDependencyError } from '../../src/lib/dependency-errors.js';
import { createPostgresDatabase } from '../helpers/postgres.js';
import { openSse, type SseConnection } from '../notifications/sse-client.js';
import { startPostgresCluster, startRedisServer, type PostgresCluster, type RedisServer } from '../helpers/services.js';
import { call, canRunFaultTests, registerClient, startService, stopAllServices, type Client, type Service } from './service.js';

/** Requests in a loop until stopped; every status is counted, so a single 500 or a process exit is seen. */
function traffic(base: string, client: Client, workers = 3) {
  const statuses: number[] = [];
  const problems: Array<Record<string, unknown> & { retryAfter: string | null }> = [];
  let running = true;
  const loops = Array.from({ length: workers }, async (_, worker) => {
    while (running) {
      try {
        // A read, and a delete that runs in a transaction (of a session that does not exist: 404), in turn.
        const response =
          worker % 2 === 0
            ? await call(base, 'GET', '/api/v1/chat/sessions', { token: client.token })
            : await call(base, 'DELETE', `/api/v1/chat/sessions/${randomUUID()}`, { token: client.token });
        statuses.push(response.status);
        if (response.status >= 500) problems.push({ ...response.body, retryAfter: response.headers.get('retry-after') });
      } catch {
        // connection refused / reset: the process is gone (checked separately)
        statuses.push(0);
      }
    }
  });
  return {
    statuses,
    problems,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function firstSuccess(base: string, client: Client, timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const response = await call(base, 'GET', '/api/v1/chat/sessions', { token: client.token }).catch(() => undefined);
    if (response?.status === 200) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error('no successful request after the database came back');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.runIf(canRunFaultTests)('a PostgreSQL restart or outage', { timeout: 120_000 }, () => {
  let cluster: PostgresCluster;
  let redis: RedisServer;
  let databaseUrl: string;
  let service: Service;
  let client: Client;

  beforeAll(async () => {
    [cluster, redis] = await Promise.all([startPostgresCluster(), startRedisServer()]);
    databaseUrl = await createPostgresDatabase(cluster.url, 'cdsa_rel');
    service = await startService({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'rel-db' });
    client = await registerClient(service.url);
  });

  afterAll(async () => {
    await stopAllServices();
    await Promise.all([cluster?.destroy(), redis?.destroy()]);
  });

  it('does not end the process when the server terminates a connection held by an open transaction', async () => {
    let database: Database | undefined;
    try {
      database = await openDatabase({ databaseUrl, poolSize: 2 });
      const open = database;
      let began!: () => void;
      const inTransaction = new Promise<void>((resolve) => (began = resolve));
      const transaction = open.db.transaction(async (tx) => {
        await tx.execute(sql`select 1`);
        began();
        // Held open across the restart: the server terminates this connection under the checked-out client.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await tx.execute(sql`select 2`);
      });
      const outcome = transaction.then(
        () => 'committed',
        (error: unknown) => error,
      );
      await inTransaction;
      await cluster.restart();
      const error = await outcome;
      // The transaction failed, as it must; the failure is recognised as the database's, and nothing else happened
      // (an 'error' event without a listener would have failed this test run as an uncaught exception).
      expect(error).not.toBe('committed');
      expect(asDependencyError(error)?.extensions.dependency).toBe('database');
      // The pool replaced the broken connection.
      await expect(open.ping()).resolves.toBeUndefined();
    } finally {
      await database?.close();
    }
  });

  it('keeps running through a fast restart and an immediate stop: 503 naming the database meanwhile, then serving again', async () => {
    const stream: SseConnection = await openSse(`${service.url}/api/v1/notifications/stream`, { authorization: `Bearer ${client.token}` });
    await stream.until((events) => events.some((event) => event.event === 'connected'));
    const load = traffic(service.url, client);
    await new Promise((resolve) => setTimeout(resolve, 300));

    await cluster.restart();
    const afterRestart = await firstSuccess(service.url, client);

    await cluster.stop();
    // Down: requests are answered, as 503 problems naming the database, with Retry-After.
    await expect.poll(async () => (await call(service.url, 'GET', '/api/v1/chat/sessions', { token: client.token })).status, { timeout: 10_000 }).toBe(503);
    const down = await call(service.url, 'GET', '/api/v1/chat/sessions', { token: client.token });
    expect(down.headers.get('content-type')).toContain('application/problem+json');
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(down.body).toMatchObject({ status: 503, dependency: 'database' });
    expect(String(down.body.detail)).toContain('database');
    const ready = await call(service.url, 'GET', '/health/ready');
    expect(ready.status).toBe(503);

    await cluster.start();
    const afterOutage = await firstSuccess(service.url, client);
    await load.stop();

    expect(service.child.exitCode).toBeNull();
    expect(load.statuses).not.toContain(0);
    expect(load.statuses.filter((status) => status === 500)).toEqual([]);
    for (const problem of load.problems) {
      expect(problem).toMatchObject({ status: 503, dependency: 'database' });
      expect(problem.retryAfter).toMatch(/^\d+$/);
    }
    expect(load.statuses.filter((status) => status === 200 || status === 404).length).toBeGreaterThan(0);
    expect(load.statuses.filter((status) => ![200, 404, 503].includes(status))).toEqual([]);
    // The open stream either stayed open or ended at an event boundary; it never took the process with it.
    expect(stream.text().endsWith('\n\n')).toBe(true);
    stream.close();
    // Bounded recovery: the pool connects again on the next request.
    expect(afterRestart).toBeLessThan(10_000);
    expect(afterOutage).toBeLessThan(10_000);
    console.info(`database back → first successful request: ${Math.round(afterRestart)} ms after a fast restart, ${Math.round(afterOutage)} ms after an outage`);
  });
});

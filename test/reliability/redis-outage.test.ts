import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresDatabase } from '../helpers/postgres.js';
import { startPostgresCluster, startRedisServer, type PostgresCluster, type RedisServer } from '../helpers/services.js';
import { openSse } from '../notifications/sse-client.js';
import { call, canRunFaultTests, login, registerClient, startService, stopAllServices, type Client, type Service } from './service.js';

describe.runIf(canRunFaultTests)('Redis down', { timeout: 120_000 }, () => {
  let cluster: PostgresCluster;
  let redis: RedisServer;
  let service: Service;
  let client: Client;

  beforeAll(async () => {
    [cluster, redis] = await Promise.all([startPostgresCluster(), startRedisServer()]);
    const databaseUrl = await createPostgresDatabase(cluster.url, 'cdsa_rel');
    service = await startService({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'rel-redis', LOGIN_MAX_FAILURES: '3' });
    client = await registerClient(service.url);
  });

  afterAll(async () => {
    await stopAllServices();
    await Promise.all([cluster?.destroy(), redis?.destroy()]);
  });

  it('people still sign in (throttled per instance) and open streams with tickets; nothing answers 500', async () => {
    await redis.stop();
    await expect.poll(async () => (await call(service.url, 'GET', '/health/ready')).status, { timeout: 15_000 }).toBe(503);

    // Login works, and failures are still limited (by this instance alone while Redis is away).
    const session = await login(service.url, client.username, client.password);
    const failures: number[] = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      failures.push((await call(service.url, 'POST', '/api/v1/auth/login', { body: { username: client.username, password: 'not the password' } })).status);
    }
    expect(failures.slice(0, 3)).toEqual([401, 401, 401]);
    expect(failures[3]).toBe(429);

    // Stream tickets are kept in the database: issued and redeemed without Redis, once.
    const issued = await call(service.url, 'POST', '/api/v1/auth/stream-ticket', { token: session.access_token });
    expect(issued.status).toBe(200);
    const ticket = String(issued.body.ticket);
    const stream = await openSse(`${service.url}/api/v1/notifications/stream?ticket=${encodeURIComponent(ticket)}`);
    expect(stream.status).toBe(200);
    await stream.until((events) => events.some((event) => event.event === 'connected'));
    stream.close();
    const reused = await call(service.url, 'GET', `/api/v1/notifications/stream?ticket=${encodeURIComponent(ticket)}`);
    expect(reused.status).toBe(401);

    // Ordinary requests and a refresh, logout: all answered without a 500.
    const statuses = [
      (await call(service.url, 'GET', '/api/v1/auth/me', { token: session.access_token })).status,
      (await call(service.url, 'GET', '/api/v1/chat/sessions', { token: session.access_token })).status,
      (await call(service.url, 'POST', '/api/v1/auth/logout', { token: session.access_token })).status,
    ];
    expect(statuses.filter((status) => status >= 500)).toEqual([]);

    await redis.start();
    await expect.poll(async () => (await call(service.url, 'GET', '/health/ready')).status, { timeout: 15_000 }).toBe(200);
    // Back to the shared counters: the per-instance lock-out during the outage does not carry over.
    await expect(login(service.url, client.username, client.password)).resolves.toMatchObject({ access_token: expect.any(String) });
    expect(service.child.exitCode).toBeNull();
  });
});

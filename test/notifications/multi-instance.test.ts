import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { baseUrl } from '../helpers/sse.js';
import { freePort } from '../helpers/process.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { openSse, type SseConnection } from './sse-client.js';

const opened: SseConnection[] = [];

async function stream(t: TestApp, user: TestUser, lastEventId?: string): Promise<SseConnection> {
  const headers: Record<string, string> = { ...user.headers };
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
  const connection = await openSse(`${baseUrl(t.app)}/api/v1/notifications/stream`, headers);
  opened.push(connection);
  expect(connection.status).toBe(200);
  await connection.until((events) => events.some((event) => event.event === 'connected'));
  return connection;
}

const notificationCount = (connection: SseConnection) => connection.notifications().length;

/** Users with no credentials, straight into the table: recipients for a fan-out large enough to take the batch path. */
async function bulkUsers(t: TestApp, count: number): Promise<string[]> {
  const prefix = `bulk_${Date.now()}_`;
  const rows = await queryRows<{ id: string }>(
    t.app.infra.database.db,
    sql`INSERT INTO users (username, email, password_hash, role)
        SELECT ${prefix} || g, ${prefix} || g || '@example.test', 'not-a-hash', 'ANALYST' FROM generate_series(1, ${count}::int) g
        RETURNING id`,
  );
  return rows.map((row) => row.id);
}

// Two instances of the service on one PostgreSQL database and one Redis, each on its own port.
describe.runIf(multiInstance)('notifications across instances', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await buildTestApp();
    b = await buildTestApp({ share: a });
    await a.app.listen({ port: 0, host: '127.0.0.1' });
    await b.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    for (const connection of opened) connection.close();
    await b?.close();
    await a?.close();
  });

  it('a notification created on A reaches the stream held on B, and only its user’s', async () => {
    const user = await createUser(a);
    const other = await createUser(a);
    const onB = await stream(b, user);
    const otherOnB = await stream(b, other);
    const created = await a.app.notifications.notify({ userId: user.user.id, type: 'APPROVAL_DECISION', title: 'Approved', message: 'go ahead' });
    await onB.until((events) => events.some((event) => event.event === 'notification'));
    expect(onB.events.at(-1)).toMatchObject({ id: String(created!.seq), data: { id: created!.id, title: 'Approved' } });
    expect(notificationCount(otherOnB)).toBe(0);
  });

  it('a large fan-out on A (one batched wake-up) reaches streams on both instances exactly once', async () => {
    const user = await createUser(a);
    const extra = await bulkUsers(a, 50);
    const onA = await stream(a, user);
    const onB = await stream(b, user);
    const result = await a.app.notifications.notifyUsers([user.user.id, ...extra], { type: 'SYSTEM_MAINTENANCE', title: 'fan-out', message: '' });
    expect(result).toEqual({ recipients: 51 });
    for (const connection of [onA, onB]) {
      await connection.until((events) => events.some((event) => event.event === 'notification'));
    }
    const second = await a.app.notifications.notify({ userId: user.user.id, type: 'SYSTEM_MAINTENANCE', title: 'after', message: '' });
    for (const connection of [onA, onB]) {
      await connection.until((events) => events.filter((event) => event.event === 'notification').length === 2);
      expect(connection.notifications().map((n) => n.title)).toEqual(['fan-out', 'after']);
      expect(connection.notifications()[1]!.seq).toBe(second!.seq);
    }
  });

  it('replays on B what was created on A, then continues live', async () => {
    const user = await createUser(a);
    const seqs: number[] = [];
    for (let i = 1; i <= 4; i += 1) {
      const created = await a.app.notifications.notify({ userId: user.user.id, type: 'DOCUMENT_INDEXED', title: `d${i}`, message: '' });
      seqs.push(created!.seq);
    }
    const onB = await stream(b, user, String(seqs[0]));
    await onB.until((events) => events.filter((event) => event.event === 'notification').length === 3);
    const live = await a.app.notifications.notify({ userId: user.user.id, type: 'DOCUMENT_INDEXED', title: 'd5', message: '' });
    await onB.until((events) => events.filter((event) => event.event === 'notification').length === 4);
    expect(onB.notifications().map((n) => n.seq)).toEqual([...seqs.slice(1), live!.seq]);
  });

  it('logging out on A ends the session’s stream on B', async () => {
    const user = await createUser(a);
    const onB = await stream(b, user);
    const logout = await a.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: user.headers });
    expect(logout.statusCode).toBe(204);
    await onB.ended;
    expect(onB.events.at(-1)).toEqual({ event: 'closed', data: { reason: 'session_ended' } });
  });
});

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function redisAnswers(t: TestApp): Promise<boolean> {
  return (await t.app.inject({ url: '/health/ready' })).statusCode === 200;
}

// A private Redis the test stops and starts again: local delivery goes on without it, cross-instance delivery resumes.
describe.runIf(multiInstance && hasRedisServer)('notifications while Redis is down', () => {
  let redis: ChildProcess | undefined;
  let a: TestApp | undefined;
  let b: TestApp | undefined;
  afterAll(async () => {
    for (const connection of opened) connection.close();
    await b?.close();
    await a?.close();
    redis?.kill('SIGKILL');
  });

  it('streams on the notifying instance still get it; the other instance catches up when Redis returns', async () => {
    const port = await freePort();
    redis = startRedis(port);
    const env = { REDIS_URL: `redis://127.0.0.1:${port}` };
    await expect.poll(() => accepts(port), { timeout: 10_000 }).toBe(true);
    a = await buildTestApp({ env });
    b = await buildTestApp({ env, share: a });
    await a.app.listen({ port: 0, host: '127.0.0.1' });
    await b.app.listen({ port: 0, host: '127.0.0.1' });
    const user = await createUser(a);
    const onA = await stream(a, user);
    const onB = await stream(b, user);

    redis.kill('SIGKILL');
    await new Promise((resolve) => redis!.once('exit', resolve));
    await expect.poll(() => redisAnswers(a!), { timeout: 15_000 }).toBe(false);

    const during = await a.app.notifications.notify({ userId: user.user.id, type: 'SECURITY_ALERT', title: 'while Redis was down', message: '' });
    expect(during).not.toBeNull();
    await onA.until((events) => events.some((event) => event.event === 'notification'));
    expect(notificationCount(onB)).toBe(0);

    redis = startRedis(port);
    await onB.until((events) => events.some((event) => event.event === 'notification'), 20_000);
    expect(onB.notifications().map((n) => n.title)).toEqual(['while Redis was down']);

    // Live cross-instance delivery is back too.
    await expect.poll(() => redisAnswers(b!), { timeout: 15_000 }).toBe(true);
    const after = await a.app.notifications.notify({ userId: user.user.id, type: 'SECURITY_ALERT', title: 'after Redis returned', message: '' });
    await onB.until((events) => events.filter((event) => event.event === 'notification').length === 2, 20_000);
    expect(onA.notifications().map((n) => n.seq)).toEqual([during!.seq, after!.seq]);
    expect(onB.notifications().map((n) => n.seq)).toEqual([during!.seq, after!.seq]);
  });
});

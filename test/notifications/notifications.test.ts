import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { withTransaction } from '../../src/db/unit-of-work.js';
import type { NotifyInput } from '../../src/modules/notifications/index.js';
import { PURGE_JOB } from '../../src/modules/notifications/notifications.jobs.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/eventually.js';
import { baseUrl } from '../helpers/sse.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { openSse, type SseConnection } from './sse-client.js';

let t: TestApp;
let url: string;
const open: SseConnection[] = [];

beforeAll(async () => {
  t = await buildTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `${baseUrl(t.app)}/api/v1/notifications`;
});

afterAll(async () => {
  for (const connection of open) connection.close();
  await t.close();
});

async function stream(user: TestUser, options: { lastEventId?: string; query?: string; headers?: Record<string, string> } = {}): Promise<SseConnection> {
  const headers: Record<string, string> = { ...user.headers, ...options.headers };
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const connection = await openSse(`${url}/stream${options.query ?? ''}`, headers);
  open.push(connection);
  return connection;
}

async function connected(connection: SseConnection): Promise<void> {
  await connection.until((events) => events.some((event) => event.event === 'connected'));
}

function notify(user: TestUser, overrides: Partial<NotifyInput> = {}) {
  return t.app.notifications.notify({
    userId: user.user.id,
    type: 'LONG_RUNNING_TASK_COMPLETED',
    title: 'Report ready',
    message: 'Your export finished',
    ...overrides,
  });
}

function api(user: TestUser, method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, payload?: object) {
  return t.app.inject({ method, url: `/api/v1/notifications${path}`, headers: user.headers, payload });
}

describe('notifications over HTTP', () => {
  it('lists, counts, reads, marks all read and deletes the caller’s notifications', async () => {
    const user = await createUser(t);
    const first = await notify(user, { title: 'first', data: { job_id: 'j1' }, priority: 'high' });
    await notify(user, { title: 'second' });
    await notify(user, { title: 'third' });
    expect(first).toMatchObject({ isRead: false, priority: 'high' });
    expect(first!.seq).toBeGreaterThan(0);

    const list = await api(user, 'GET', '');
    expect(list.statusCode).toBe(200);
    expect(list.json().items.map((item: { title: string }) => item.title)).toEqual(['third', 'second', 'first']);
    expect(list.json().items[2]).toEqual({
      id: first!.id,
      seq: first!.seq,
      type: 'LONG_RUNNING_TASK_COMPLETED',
      title: 'first',
      message: 'Your export finished',
      data: { job_id: 'j1' },
      priority: 'high',
      is_read: false,
      read_at: null,
      expires_at: null,
      created_at: first!.createdAt.toISOString(),
    });
    expect((await api(user, 'GET', '/unread-count')).json()).toEqual({ unread_count: 3 });

    const read = await api(user, 'PUT', `/${first!.id}/read`);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ id: first!.id, is_read: true });
    const readAt = read.json().read_at as string;
    expect(Date.parse(readAt)).not.toBeNaN();
    // Reading again keeps the first read time.
    expect((await api(user, 'PUT', `/${first!.id}/read`)).json().read_at).toBe(readAt);
    expect((await api(user, 'GET', '/unread-count')).json()).toEqual({ unread_count: 2 });
    expect((await api(user, 'GET', '?unread_only=true')).json().items.map((item: { title: string }) => item.title)).toEqual(['third', 'second']);

    expect((await api(user, 'PUT', '/mark-all-read')).json()).toEqual({ marked_read: 2 });
    expect((await api(user, 'PUT', '/mark-all-read')).json()).toEqual({ marked_read: 0 });
    expect((await api(user, 'GET', '/unread-count')).json()).toEqual({ unread_count: 0 });

    expect((await api(user, 'GET', `/${first!.id}`)).json()).toMatchObject({ id: first!.id, title: 'first' });
    expect((await api(user, 'DELETE', `/${first!.id}`)).statusCode).toBe(204);
    expect((await api(user, 'GET', `/${first!.id}`)).statusCode).toBe(404);
    expect((await api(user, 'DELETE', `/${first!.id}`)).statusCode).toBe(404);
  });

  it('pages with limit and cursor, newest first, without overlap', async () => {
    const user = await createUser(t);
    for (let i = 1; i <= 7; i += 1) await notify(user, { title: `n${i}` });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await api(user, 'GET', `?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(response.statusCode).toBe(200);
      const body = response.json() as { items: { title: string }[]; next_cursor: string | null };
      seen.push(...body.items.map((item) => item.title));
      cursor = body.next_cursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(['n7', 'n6', 'n5', 'n4', 'n3', 'n2', 'n1']);
    expect((await api(user, 'GET', '?limit=201')).statusCode).toBe(422);
    expect((await api(user, 'GET', '?cursor=not-a-cursor')).statusCode).toBe(400);
  });

  it('another user’s notification is not found, whatever the verb', async () => {
    const owner = await createUser(t);
    const intruder = await createUser(t);
    const notification = await notify(owner);
    for (const [method, path] of [
      ['GET', `/${notification!.id}`],
      ['PUT', `/${notification!.id}/read`],
      ['DELETE', `/${notification!.id}`],
    ] as const) {
      const response = await api(intruder, method, path);
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
    expect((await api(intruder, 'GET', '')).json().items).toEqual([]);
    expect((await api(intruder, 'PUT', '/mark-all-read')).json()).toEqual({ marked_read: 0 });
    expect((await api(owner, 'GET', `/${notification!.id}`)).json().is_read).toBe(false);
    expect([404, 422]).toContain((await api(owner, 'GET', '/not-a-uuid')).statusCode);
    expect((await api(owner, 'GET', `/${randomUUID()}`)).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/notifications' })).statusCode).toBe(401);
  });

  it('seqs stay strictly increasing per user under concurrent notifies, and a rolled-back notify leaves no gap', async () => {
    const user = await createUser(t);
    const other = await createUser(t);
    const before = await t.app.infra.database.db.transaction((tx) =>
      queryRows<{ last_seq: string | number }>(tx, sql`SELECT last_seq FROM notification_sequence`),
    );
    const start = Number(before[0]!.last_seq);
    const results = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => notify(user, { title: `c${i}` })),
      ...Array.from({ length: 5 }, () => notify(other)),
    ]);
    // One global counter: the 25 fan-outs took the 25 next seqs, each exactly once.
    const all = results.map((row) => row!.seq).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 25 }, (_, i) => start + i + 1));
    const stored = await queryRows<{ seq: string | number }>(
      t.app.infra.database.db,
      sql`SELECT seq FROM notifications WHERE user_id = ${user.user.id}::uuid ORDER BY created_at, seq`,
    );
    expect(new Set(stored.map((row) => Number(row.seq))).size).toBe(20);

    await expect(
      withTransaction(t.app.infra.database.db, async (uow) => {
        await t.app.notifications.notify({ userId: user.user.id, type: 'TOOL_ADDED', title: 'rolled back', message: '' }, uow);
        throw new Error('the caller’s change failed');
      }),
    ).rejects.toThrow('failed');
    const next = await notify(user);
    expect(next!.seq).toBe(start + 26);
    expect((await api(user, 'GET', '?limit=200')).json().items.some((item: { title: string }) => item.title === 'rolled back')).toBe(false);
  });

  it('gives every recipient of a fan-out its own version-4 uuid and the same seq', async () => {
    const users = [await createUser(t), await createUser(t), await createUser(t)];
    const ids = users.map((user) => user.user.id);
    await t.app.notifications.notifyUsers(ids, { type: 'SYSTEM_MAINTENANCE', title: 'ids', message: '' });
    await t.app.notifications.notifyUsers(ids, { type: 'SYSTEM_MAINTENANCE', title: 'ids', message: '' });
    const rows = await queryRows<{ id: string; user_id: string; seq: string | number }>(
      t.app.infra.database.db,
      sql`SELECT id, user_id, seq FROM notifications WHERE user_id = ANY(string_to_array(${ids.join(',')}::text, ',')::uuid[]) ORDER BY seq`,
    );
    expect(rows).toHaveLength(6);
    expect(new Set(rows.map((row) => row.id)).size).toBe(6);
    for (const row of rows) expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(rows.map((row) => Number(row.seq))).size).toBe(2);
    for (const row of rows) {
      expect((await api(users[0]!, 'GET', `/${row.id}`)).statusCode).toBe(row.user_id === ids[0] ? 200 : 404);
    }
  });

  it('a user deleted from the database takes their notifications along', async () => {
    const db = t.app.infra.database.db;
    const [row] = await queryRows<{ id: string }>(
      db,
      sql`INSERT INTO users (username, email, password_hash, role) VALUES ('to_delete', 'to_delete@example.test', 'x', 'ANALYST') RETURNING id`,
    );
    const keeper = await createUser(t);
    await t.app.notifications.notifyUsers([row!.id, keeper.user.id], { type: 'SYSTEM_MAINTENANCE', title: 'both', message: '' });
    const count = async (userId: string) =>
      (await queryRows<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM notifications WHERE user_id = ${userId}::uuid`))[0]!.n;
    expect(await count(row!.id)).toBe(1);
    await queryRows(db, sql`DELETE FROM users WHERE id = ${row!.id}::uuid`);
    expect(await count(row!.id)).toBe(0);
    expect(await count(keeper.user.id)).toBe(1);
  });

  it('expired notifications are neither listed, counted, found nor streamed, and the purge job deletes them', async () => {
    const user = await createUser(t);
    const expired = await notify(user, { title: 'old', expiresAt: new Date(Date.now() - 1_000) });
    const live = await notify(user, { title: 'live', expiresAt: new Date(Date.now() + 3_600_000) });
    expect((await api(user, 'GET', '')).json().items.map((item: { title: string }) => item.title)).toEqual(['live']);
    expect((await api(user, 'GET', '/unread-count')).json()).toEqual({ unread_count: 1 });
    expect((await api(user, 'GET', `/${expired!.id}`)).statusCode).toBe(404);
    expect((await api(user, 'PUT', `/${expired!.id}/read`)).statusCode).toBe(404);

    const connection = await stream(user, { lastEventId: '0' });
    await connection.until((events) => events.filter((event) => event.event === 'notification').length === 1);
    expect(connection.notifications().map((n) => n.title)).toEqual(['live']);
    await notify(user, { title: 'born expired', expiresAt: new Date(Date.now() - 1) });
    await notify(user, { title: 'after' });
    await connection.until((events) => events.filter((event) => event.event === 'notification').length === 2);
    expect(connection.notifications().map((n) => n.title)).toEqual(['live', 'after']);
    connection.close();

    const rows = () =>
      queryRows<{ id: string }>(t.app.infra.database.db, sql`SELECT id FROM notifications WHERE user_id = ${user.user.id}::uuid`);
    expect((await rows()).length).toBe(4);
    await t.app.infra.jobs.enqueue(PURGE_JOB, {}, { jobId: `purge-now-${randomUUID()}` });
    await eventually(async () => (await rows()).length === 2);
    expect((await rows()).map((row) => row.id)).toContain(live!.id);
  });
});

describe('notification preferences', () => {
  it('defaults to every type in-app; a switched-off type is neither stored nor streamed', async () => {
    const user = await createUser(t);
    const initial = await api(user, 'GET', '/preferences');
    expect(initial.statusCode).toBe(200);
    expect(initial.json().preferences).toHaveLength(12);
    expect(initial.json().preferences).toContainEqual({ notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'in_app' });

    const update = await api(user, 'PUT', '/preferences', {
      preferences: [
        { notification_type: 'TOOL_ADDED', enabled: false, delivery_method: 'in_app' },
        { notification_type: 'TOOL_UPDATED', enabled: true, delivery_method: 'none' },
      ],
    });
    expect(update.statusCode).toBe(200);
    expect(update.json().preferences).toContainEqual({ notification_type: 'TOOL_ADDED', enabled: false, delivery_method: 'in_app' });
    expect(update.json().preferences).toContainEqual({ notification_type: 'TOOL_REMOVED', enabled: true, delivery_method: 'in_app' });

    const connection = await stream(user);
    await connected(connection);
    expect(await notify(user, { type: 'TOOL_ADDED', title: 'muted' })).toBeNull();
    expect(await notify(user, { type: 'TOOL_UPDATED', title: 'muted too' })).toBeNull();
    expect(await t.app.notifications.notifyUsers([user.user.id], { type: 'TOOL_ADDED', title: 'muted', message: '' })).toEqual({ recipients: 0 });
    await notify(user, { type: 'TOOL_REMOVED', title: 'wanted' });
    await connection.until((events) => events.some((event) => event.event === 'notification'));
    expect(connection.notifications().map((n) => n.title)).toEqual(['wanted']);
    expect((await api(user, 'GET', '')).json().items.map((item: { title: string }) => item.title)).toEqual(['wanted']);
    connection.close();

    // Switching it back on takes effect for the next one.
    await api(user, 'PUT', '/preferences', { preferences: [{ notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'in_app' }] });
    expect(await notify(user, { type: 'TOOL_ADDED' })).not.toBeNull();
  });

  it('takes realtime as the in-app method, and refuses email while no SMTP server is configured', async () => {
    const user = await createUser(t);
    const realtime = await api(user, 'PUT', '/preferences', { preferences: [{ notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'realtime' }] });
    expect(realtime.statusCode, realtime.body).toBe(200);
    expect(realtime.json().preferences).toContainEqual({ notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'in_app' });
    expect(await notify(user, { type: 'TOOL_ADDED', title: 'still here' })).not.toBeNull();
    const email = await api(user, 'PUT', '/preferences', { preferences: [{ notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'email' }] });
    expect(email.statusCode).toBe(422);
    expect(email.json().errors).toEqual([expect.objectContaining({ pointer: '/preferences/0/delivery_method', detail: expect.stringContaining('SMTP_URL') })]);
  });

  it('SECURITY_ALERT cannot be switched off and is always delivered', async () => {
    const user = await createUser(t);
    for (const preference of [
      { notification_type: 'SECURITY_ALERT', enabled: false, delivery_method: 'in_app' },
      { notification_type: 'SECURITY_ALERT', enabled: true, delivery_method: 'none' },
    ]) {
      const response = await api(user, 'PUT', '/preferences', { preferences: [preference] });
      expect(response.statusCode).toBe(422);
      expect(response.json().errors[0].pointer).toBe('/preferences/0');
    }
    // Even a row written behind the API's back does not mute it.
    await queryRows(
      t.app.infra.database.db,
      sql`INSERT INTO notification_preferences (user_id, notification_type, enabled) VALUES (${user.user.id}::uuid, 'SECURITY_ALERT', false)`,
    );
    expect((await api(user, 'GET', '/preferences')).json().preferences).toContainEqual({
      notification_type: 'SECURITY_ALERT',
      enabled: true,
      delivery_method: 'in_app',
    });
    expect(await notify(user, { type: 'SECURITY_ALERT', title: 'New sign-in' })).not.toBeNull();
  });

  it('rejects unknown types, duplicates and unknown fields', async () => {
    const user = await createUser(t);
    const bad = [
      { preferences: [{ notification_type: 'NOPE', enabled: false, delivery_method: 'in_app' }] },
      { preferences: [{ notification_type: 'TOOL_ADDED', enabled: false, delivery_method: 'email' }] },
      { preferences: [{ notification_type: 'TOOL_ADDED', enabled: false, delivery_method: 'in_app', extra: 1 }] },
      {
        preferences: [
          { notification_type: 'TOOL_ADDED', enabled: false, delivery_method: 'in_app' },
          { notification_type: 'TOOL_ADDED', enabled: true, delivery_method: 'in_app' },
        ],
      },
    ];
    for (const payload of bad) expect((await api(user, 'PUT', '/preferences', payload)).statusCode).toBe(422);
  });
});

describe('broadcast and role notifications', () => {
  it('needs notifications:broadcast; reaches every active user or exactly the target roles, and is audited', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    const manager = await createUser(t, { role: 'MANAGER' });
    const analyst = await createUser(t, { role: 'ANALYST' });
    const inactive = await createUser(t, { role: 'MANAGER' });
    const deactivate = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/users/${inactive.user.id}`,
      headers: admin.headers,
      payload: { is_active: false },
    });
    expect(deactivate.statusCode, deactivate.body).toBe(200);

    const body = { type: 'SYSTEM_MAINTENANCE', title: 'Maintenance tonight', message: 'From 22:00 UTC', priority: 'urgent' };
    expect((await api(manager, 'POST', '/broadcast', body)).statusCode).toBe(403);
    expect((await api(analyst, 'POST', '/broadcast', body)).statusCode).toBe(403);
    expect((await api(admin, 'POST', '/broadcast', { ...body, extra: true })).statusCode).toBe(422);
    expect((await api(admin, 'POST', '/broadcast', { ...body, target_roles: [] })).statusCode).toBe(422);

    const managerStream = await stream(manager);
    const analystStream = await stream(analyst);
    await Promise.all([connected(managerStream), connected(analystStream)]);

    const activeUsers = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM users WHERE is_active`);
    const everyone = await api(admin, 'POST', '/broadcast', body);
    expect(everyone.statusCode).toBe(202);
    expect(everyone.json()).toEqual({ recipients: activeUsers[0]!.n });
    await managerStream.until((events) => events.some((event) => event.event === 'notification'));
    await analystStream.until((events) => events.some((event) => event.event === 'notification'));
    expect(analystStream.notifications()[0]).toMatchObject({ type: 'SYSTEM_MAINTENANCE', title: 'Maintenance tonight', priority: 'urgent' });
    expect((await api(inactive, 'GET', '')).statusCode).toBe(401);
    const inactiveRows = await queryRows(t.app.infra.database.db, sql`SELECT id FROM notifications WHERE user_id = ${inactive.user.id}::uuid`);
    expect(inactiveRows).toHaveLength(0);

    const managersOnly = await api(admin, 'POST', '/broadcast', { ...body, title: 'Managers only', target_roles: ['MANAGER'] });
    expect(managersOnly.statusCode).toBe(202);
    await managerStream.until((events) => events.filter((event) => event.event === 'notification').length === 2);
    expect(managerStream.notifications()[1]).toMatchObject({ title: 'Managers only' });
    expect((await api(analyst, 'GET', '')).json().items.map((item: { title: string }) => item.title)).toEqual(['Maintenance tonight']);
    expect((await api(admin, 'GET', '')).json().items.map((item: { title: string }) => item.title)).toEqual(['Maintenance tonight']);

    const audit = await queryRows<{ user_id: string; details: Record<string, unknown> }>(
      t.app.infra.database.db,
      sql`SELECT user_id, details FROM audit_events WHERE event_type = 'NOTIFICATION_BROADCAST' ORDER BY seq`,
    );
    expect(audit.at(-1)).toMatchObject({ user_id: admin.user.id, details: { notification_type: 'SYSTEM_MAINTENANCE', target_roles: ['MANAGER'] } });
  });

  it('notifyRole reaches every active user holding at least that role', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    const manager = await createUser(t, { role: 'MANAGER' });
    const analyst = await createUser(t, { role: 'ANALYST' });
    const title = `approval ${randomUUID()}`;
    const result = await t.app.notifications.notifyRole('MANAGER', { type: 'APPROVAL_REQUESTED', title, message: 'waiting' });
    const holders = await queryRows<{ n: number }>(
      t.app.infra.database.db,
      sql`SELECT count(*)::int AS n FROM users WHERE is_active AND role IN ('MANAGER', 'ADMIN')`,
    );
    expect(result).toEqual({ recipients: holders[0]!.n });
    const titles = async (user: TestUser) => (await api(user, 'GET', '')).json().items.map((item: { title: string }) => item.title);
    expect(await titles(manager)).toContain(title);
    expect(await titles(admin)).toContain(title);
    expect(await titles(analyst)).not.toContain(title);
  });
});

describe('the notification stream', () => {
  it('sends retry, connected, then id: seq + notification, only for its own user', async () => {
    const alice = await createUser(t);
    const bob = await createUser(t);
    const aliceStream = await stream(alice);
    const bobStream = await stream(bob);
    expect(aliceStream.status).toBe(200);
    expect(aliceStream.headers['content-type']).toContain('text/event-stream');
    await Promise.all([connected(aliceStream), connected(bobStream)]);
    const created = await notify(alice, { title: 'for alice', data: { k: 'v' } });
    await notify(bob, { title: 'for bob' });
    await notify(alice, { title: 'for alice again' });
    await aliceStream.until((events) => events.filter((event) => event.event === 'notification').length === 2);
    await bobStream.until((events) => events.filter((event) => event.event === 'notification').length === 1);

    expect(aliceStream.text().startsWith('retry: ')).toBe(true);
    expect(aliceStream.events[0]).toMatchObject({ event: 'connected', data: { connection_id: expect.any(String) } });
    expect(aliceStream.events[1]).toEqual({
      id: String(created!.seq),
      event: 'notification',
      data: expect.objectContaining({ id: created!.id, seq: created!.seq, title: 'for alice', data: { k: 'v' }, is_read: false }),
    });
    expect(aliceStream.notifications().map((n) => n.title)).toEqual(['for alice', 'for alice again']);
    expect(bobStream.notifications().map((n) => n.title)).toEqual(['for bob']);
    expect(bobStream.text()).not.toContain('for alice');
  });

  it('needs credentials; a stream ticket works once; an access token in the URL is refused', async () => {
    const user = await createUser(t);
    const anonymous = await openSse(`${url}/stream`);
    open.push(anonymous);
    expect(anonymous.status).toBe(401);

    const issued = await t.app.inject({ method: 'POST', url: '/api/v1/auth/stream-ticket', headers: user.headers });
    expect(issued.statusCode).toBe(200);
    const { ticket } = issued.json() as { ticket: string };
    const withTicket = await openSse(`${url}/stream?ticket=${encodeURIComponent(ticket)}`);
    open.push(withTicket);
    expect(withTicket.status).toBe(200);
    await connected(withTicket);
    await notify(user, { title: 'via ticket' });
    await withTicket.until((events) => events.some((event) => event.event === 'notification'));

    const reused = await openSse(`${url}/stream?ticket=${encodeURIComponent(ticket)}`);
    open.push(reused);
    expect(reused.status).toBe(401);
    const tokenInUrl = await openSse(`${url}/stream?access_token=${encodeURIComponent(user.access_token)}`);
    open.push(tokenInUrl);
    expect(tokenInUrl.status).toBe(401);
  });

  it('replays after Last-Event-ID (header or query, header wins) in order, then continues live', async () => {
    const user = await createUser(t);
    const seqs: number[] = [];
    for (let i = 1; i <= 5; i += 1) seqs.push((await notify(user, { title: `n${i}` }))!.seq);
    const [, s2, s3, s4, s5] = seqs as [number, number, number, number, number];

    const byHeader = await stream(user, { lastEventId: String(s2) });
    await byHeader.until((events) => events.filter((event) => event.event === 'notification').length === 3);
    expect(byHeader.notifications().map((n) => n.seq)).toEqual([s3, s4, s5]);
    expect(byHeader.events.filter((event) => event.event === 'notification').map((event) => event.id)).toEqual([s3, s4, s5].map(String));

    const byQuery = await stream(user, { query: `?last_event_id=${s3}` });
    const both = await stream(user, { query: '?last_event_id=0', lastEventId: String(s4) });
    await byQuery.until((events) => events.filter((event) => event.event === 'notification').length === 2);
    await both.until((events) => events.filter((event) => event.event === 'notification').length === 1);
    const s6 = (await notify(user, { title: 'n6' }))!.seq;
    for (const connection of [byHeader, byQuery, both]) {
      await connection.until((events) => events.some((event) => event.event === 'notification' && (event.data as { seq: number }).seq === s6));
    }
    expect(byHeader.notifications().map((n) => n.seq)).toEqual([s3, s4, s5, s6]);
    expect(byQuery.notifications().map((n) => n.seq)).toEqual([s4, s5, s6]);
    expect(both.notifications().map((n) => n.seq)).toEqual([s5, s6]);
  });

  it('treats a malformed Last-Event-ID as none: no replay, live delivery, no error', async () => {
    const user = await createUser(t);
    await notify(user, { title: 'old' });
    for (const lastEventId of ['abc', '-1', '1.5', '9'.repeat(40), '']) {
      const connection = await stream(user, { lastEventId });
      expect(connection.status).toBe(200);
      await connected(connection);
      const fresh = await notify(user, { title: `after ${lastEventId.slice(0, 5)}` });
      await connection.until((events) => events.some((event) => event.event === 'notification'));
      expect(connection.notifications().map((n) => n.seq)).toEqual([fresh!.seq]);
      connection.close();
    }
  });

  it('loses nothing and repeats nothing across reconnects while notifications keep arriving', async () => {
    const user = await createUser(t);
    const total = 60;
    let created = 0;
    const seqs: number[] = [];
    const producer = (async () => {
      while (created < total) {
        seqs.push((await notify(user, { title: `r${created + 1}` }))!.seq);
        created += 1;
        // Let the event loop serve the reconnecting stream between notifications.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const received: number[] = [];
    let lastEventId: string | undefined;
    let reconnects = 0;
    while (received.length < total) {
      const connection = await stream(user, lastEventId === undefined ? { lastEventId: '0' } : { lastEventId });
      const target = Math.min(total, received.length + 7);
      await connection.until((events) => events.filter((event) => event.event === 'notification').length + received.length >= target);
      connection.close();
      const batch = connection.events.filter((event) => event.event === 'notification');
      received.push(...batch.map((event) => (event.data as { seq: number }).seq));
      lastEventId = batch.at(-1)?.id ?? lastEventId;
      reconnects += 1;
    }
    await producer;
    expect(reconnects).toBeGreaterThan(3);
    expect(received).toEqual(seqs);
    expect(received.map((seq) => seq - received[0]!)).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('paces a long replay to a slow reader instead of buffering it or dropping the reader', async () => {
    const user = await createUser(t);
    const total = 2_000;
    const padding = 'x'.repeat(4_096);
    // 8 MB of history, well past the stream's 1 MB buffer limit if it were written all at once.
    const base = await withTransaction(t.app.infra.database.db, async (uow) => {
      const [counter] = await queryRows<{ last_seq: number | string }>(
        uow.tx,
        sql`UPDATE notification_sequence SET last_seq = last_seq + ${total}::int WHERE id = 1 RETURNING last_seq`,
      );
      const first = Number(counter!.last_seq) - total;
      await queryRows(
        uow.tx,
        sql`INSERT INTO notifications (user_id, seq, type, title, message, data)
            SELECT ${user.user.id}::uuid, ${first}::bigint + g, 'DOCUMENT_INDEXED', 'doc ' || g, 'indexed', jsonb_build_object('padding', ${padding}::text)
            FROM generate_series(1, ${total}::int) g`,
      );
      return first;
    });
    const connection = await stream(user, { lastEventId: String(base) });
    connection.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    connection.resume();
    await connection.until((events) => events.filter((event) => event.event === 'notification').length === total, 30_000);
    expect(connection.notifications().map((n) => n.seq)).toEqual(Array.from({ length: total }, (_, i) => base + i + 1));
    const live = await notify(user, { title: 'live after the replay' });
    await connection.until((events) => events.some((event) => event.event === 'notification' && (event.data as { seq: number }).seq === live!.seq));
  });

  it('closes the oldest stream past 5 per user', async () => {
    const user = await createUser(t);
    const streams: SseConnection[] = [];
    for (let i = 0; i < 5; i += 1) {
      streams.push(await stream(user));
      await connected(streams[i]!);
    }
    const sixth = await stream(user);
    await connected(sixth);
    await streams[0]!.ended;
    expect(streams[0]!.events.at(-1)).toEqual({ event: 'closed', data: { reason: 'stream_limit' } });
    await notify(user, { title: 'still here' });
    for (const connection of [...streams.slice(1), sixth]) {
      await connection.until((events) => events.some((event) => event.event === 'notification'));
    }
    expect(streams[0]!.notifications()).toEqual([]);
  });

  it('a logged-out session and a deactivated user lose their streams', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    const user = await createUser(t);
    const loggedOut = await stream(user);
    await connected(loggedOut);
    const logout = await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: user.headers });
    expect(logout.statusCode).toBe(204);
    await loggedOut.ended;
    expect(loggedOut.events.at(-1)).toEqual({ event: 'closed', data: { reason: 'session_ended' } });

    const other = await createUser(t);
    const deactivated = await stream(other);
    await connected(deactivated);
    const patch = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${other.user.id}`, headers: admin.headers, payload: { is_active: false } });
    expect(patch.statusCode).toBe(200);
    await deactivated.ended;
    expect(deactivated.events.at(-1)).toEqual({ event: 'closed', data: { reason: 'session_ended' } });
  });

  it('releases every stream registration over many connect/disconnect cycles, and subscribes nothing per stream', async () => {
    const users = [await createUser(t), await createUser(t)];
    const baseline = t.app.infra.pubsub.listenerCount();
    const baseStreams = t.app.infra.sse.size();
    const baseHub = t.app.notifications.streamCount();
    for (let cycle = 0; cycle < 40; cycle += 1) {
      const connections = await Promise.all(users.map((user) => stream(user)));
      await Promise.all(connections.map((connection) => connected(connection)));
      expect(t.app.notifications.streamCount()).toBe(baseHub + users.length);
      expect(t.app.infra.pubsub.listenerCount()).toBe(baseline);
      for (const connection of connections) connection.close();
      await eventually(() => t.app.infra.sse.size() === baseStreams && t.app.notifications.streamCount() === baseHub);
    }
    // Notifying users with no stream left wakes nothing and throws nothing.
    await notify(users[0]!);
    expect(t.app.infra.pubsub.listenerCount()).toBe(baseline);
  });

  it('is documented in the OpenAPI description', async () => {
    const spec = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    for (const path of [
      '/api/v1/notifications',
      '/api/v1/notifications/stream',
      '/api/v1/notifications/unread-count',
      '/api/v1/notifications/{id}',
      '/api/v1/notifications/{id}/read',
      '/api/v1/notifications/mark-all-read',
      '/api/v1/notifications/preferences',
      '/api/v1/notifications/broadcast',
    ]) {
      expect(spec.paths[path], path).toBeDefined();
    }
  });
});

import { createHash, createPublicKey, randomUUID, verify } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { canonicalJson } from '../../src/lib/canonical-json.js';
import { hashEvent, type AuditEvent } from '../../src/modules/audit/audit.chain.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { tamper } from './tamper.js';

const CONTRACT_FIELDS = [
  'created_at',
  'details',
  'event_type',
  'hash',
  'id',
  'ip_address',
  'prev_hash',
  'resource_id',
  'resource_type',
  'seq',
  'session_id',
  'user_agent',
  'user_id',
];

describe('audit trail API', () => {
  let t: TestApp;
  let admin: TestUser;
  let manager: TestUser;
  let analyst: TestUser;
  let otherAnalyst: TestUser;

  beforeAll(async () => {
    t = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
    admin = await createUser(t, { role: 'ADMIN' });
    manager = await createUser(t, { role: 'MANAGER' });
    analyst = await createUser(t, { role: 'ANALYST' });
    otherAnalyst = await createUser(t, { role: 'ANALYST' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const get = (url: string, user: TestUser) => t.app.inject({ method: 'GET', url, headers: user.headers });

  it('presents events with exactly the contract fields, hashed as documented', async () => {
    await t.app.audit.recordStandalone({
      eventType: 'USER_QUERY',
      userId: analyst.user.id,
      resourceType: 'document',
      resourceId: 'doc-1',
      details: { query_length: 12, nested: { b: 1, a: [true, null, 'é'] } },
      context: { ipAddress: '10.0.0.1', userAgent: 'vitest', requestId: 'r1' },
    });
    const response = await get('/api/v1/audit/events?event_type=USER_QUERY&limit=1', admin);
    expect(response.statusCode).toBe(200);
    const [event] = response.json().items as AuditEvent[];
    expect(Object.keys(event!).sort()).toEqual(CONTRACT_FIELDS);
    expect(event).toMatchObject({ event_type: 'USER_QUERY', user_id: analyst.user.id, resource_id: 'doc-1', ip_address: '10.0.0.1' });
    // The documented algorithm, written out: sha256(prev_hash ‖ canonical JSON of every other field).
    const { prev_hash: prevHash, hash, ...fields } = event!;
    expect(createHash('sha256').update(prevHash + canonicalJson(fields)).digest('hex')).toBe(hash);
    expect(hashEvent(prevHash, event!)).toBe(hash);
  });

  it('keeps the chain valid and gap-free after many events of every kind', async () => {
    const db = t.app.infra.database.db;
    await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        i % 3 === 0
          ? db.transaction((tx) => t.app.audit.recordMany(tx, [{ eventType: 'TOOL_CALL_INITIATED', userId: analyst.user.id, details: { i } }, { eventType: 'TOOL_CALL_COMPLETED', details: { i } }]))
          : t.app.audit.recordStandalone({ eventType: 'LLM_REQUEST', userId: manager.user.id, details: { i, ...t.app.audit.promptDigest(`prompt ${i}`) } }),
      ),
    );
    const response = await get('/api/v1/audit/verify', manager);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(Object.keys(body).sort()).toEqual(['checked', 'first_invalid_seq', 'head_hash', 'head_seq', 'valid']);
    expect(body.valid).toBe(true);
    expect(body.first_invalid_seq).toBeNull();
    expect(body.checked).toBe(body.head_seq);
    const [stats] = await queryRows<{ n: unknown; max: unknown }>(db, sql`select count(*) as n, max(seq) as max from audit_events`);
    expect(Number(stats!.n)).toBe(body.head_seq);
    expect(Number(stats!.max)).toBe(body.head_seq);
  });

  it('lets analysts read only their own events; managers and admins read all', async () => {
    const own = await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: analyst.user.id, details: { mine: true } });
    const theirs = await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: otherAnalyst.user.id, details: { mine: false } });

    const list = await get('/api/v1/audit/events?limit=200', analyst);
    expect(list.statusCode).toBe(200);
    const items = list.json().items as AuditEvent[];
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((event) => event.user_id === analyst.user.id)).toBe(true);
    expect(items.map((event) => event.id)).toContain(own.id);

    // Filtering by someone else is an empty answer, their event a 404.
    const filtered = await get(`/api/v1/audit/events?user_id=${otherAnalyst.user.id}`, analyst);
    expect(filtered.json().items).toEqual([]);
    expect((await get(`/api/v1/audit/events/${theirs.id}`, analyst)).statusCode).toBe(404);
    expect((await get(`/api/v1/audit/events/${own.id}`, analyst)).json().id).toBe(own.id);

    for (const reader of [manager, admin]) {
      expect((await get(`/api/v1/audit/events/${theirs.id}`, reader)).statusCode).toBe(200);
      const all = (await get('/api/v1/audit/events?limit=200', reader)).json().items as AuditEvent[];
      expect(new Set(all.map((event) => event.user_id)).size).toBeGreaterThan(1);
    }

    const stats = (await get('/api/v1/audit/stats', analyst)).json();
    expect(Object.keys(stats.by_user)).toEqual([analyst.user.id]);

    expect((await get('/api/v1/audit/verify', analyst)).statusCode).toBe(403);
    expect((await get('/api/v1/audit/checkpoints', analyst)).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/audit/events' })).statusCode).toBe(401);
  });

  it('filters by type, user and period, and pages with a cursor', async () => {
    const marker = await t.app.audit.recordStandalone({ eventType: 'VAULT_KEY_ROTATED', userId: admin.user.id, details: {} });
    for (let i = 0; i < 4; i += 1) await t.app.audit.recordStandalone({ eventType: 'VAULT_KEY_ROTATED', userId: admin.user.id, details: { i } });
    const seen: AuditEvent[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `event_type=VAULT_KEY_ROTATED&user_id=${admin.user.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await get(`/api/v1/audit/events?${query}`, manager);
      expect(page.statusCode).toBe(200);
      const body = page.json() as { items: AuditEvent[]; next_cursor: string | null };
      seen.push(...body.items);
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(seen.map((event) => event.seq)).toEqual([...seen.map((event) => event.seq)].sort((a, b) => b - a));

    const at = marker.createdAt.toISOString();
    const period = await get(`/api/v1/audit/events?event_type=VAULT_KEY_ROTATED&from=${at}&to=${at}`, manager);
    expect(period.json().items.map((event: AuditEvent) => event.id)).toContain(marker.id);
    const before = await get(`/api/v1/audit/events?event_type=VAULT_KEY_ROTATED&to=2000-01-01`, manager);
    expect(before.json().items).toEqual([]);
  });

  it('answers bad filters and dates with 422 problems', async () => {
    const bad = [
      'event_type=NOT_A_TYPE',
      'user_id=not-a-uuid',
      'from=yesterday',
      'from=2026-02-31',
      'to=2026-13-01T00:00:00Z',
      'from=2026-11-26T10:00:00Z&to=2026-11-25T00:00:00Z',
      'limit=0',
      'limit=201',
      'unknown_filter=1',
    ];
    for (const query of bad) {
      const response = await get(`/api/v1/audit/events?${query}`, manager);
      expect(response.statusCode, query).toBe(422);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().errors.length, query).toBeGreaterThan(0);
    }
    // A cursor the API did not hand out is a malformed request, like on every other list.
    expect((await get('/api/v1/audit/events?cursor=%25%25%25', manager)).statusCode).toBe(400);
    expect((await get('/api/v1/audit/stats?from=soon', manager)).statusCode).toBe(422);
    expect((await get('/api/v1/audit/events/not-a-uuid', manager)).statusCode).toBe(422);
    expect((await get('/api/v1/audit/verify?from_seq=0', manager)).statusCode).toBe(422);
    expect((await get('/api/v1/audit/verify?from_seq=5&to_seq=4', manager)).statusCode).toBe(422);
    const report = await t.app.inject({
      method: 'POST',
      url: '/api/v1/audit/report',
      headers: admin.headers,
      payload: { from: '2026-11-02', to: '2026-11-01', format: 'pdf' },
    });
    expect(report.statusCode).toBe(422);
    const format = await t.app.inject({ method: 'POST', url: '/api/v1/audit/report', headers: admin.headers, payload: { from: '2026-11-01', to: '2026-11-02', format: 'docx' } });
    expect(format.statusCode).toBe(422);
  });

  it('counts events by type, day and user', async () => {
    const response = await get('/api/v1/audit/stats', manager);
    expect(response.statusCode).toBe(200);
    const stats = response.json();
    const total = Object.values(stats.by_type as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(stats.total).toBe(total);
    expect(Object.values(stats.by_day as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(total);
    expect(Object.values(stats.by_user as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(total);
    expect(stats.by_type.VAULT_KEY_ROTATED).toBe(5);
    expect(Object.keys(stats.by_day)[0]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('exports signed checkpoints with the public key that verifies them', async () => {
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/audit/checkpoints', headers: admin.headers });
    expect(created.statusCode).toBe(201);
    const checkpoint = created.json();
    expect((await t.app.inject({ method: 'POST', url: '/api/v1/audit/checkpoints', headers: manager.headers })).statusCode).toBe(403);

    const exported = await get('/api/v1/audit/checkpoints', manager);
    expect(exported.statusCode).toBe(200);
    const body = exported.json();
    expect(body.items[0]).toEqual({ seq: checkpoint.seq, hash: checkpoint.hash, time: checkpoint.time, key_id: checkpoint.key_id, signature: checkpoint.signature });
    const key = createPublicKey(body.public_key_pem);
    const signed = (seq: number) => Buffer.from(canonicalJson({ hash: checkpoint.hash, key_id: body.key_id, seq, time: checkpoint.time }));
    expect(checkpoint.key_id).toBe(body.key_id);
    expect(verify(null, signed(checkpoint.seq), key, Buffer.from(checkpoint.signature, 'base64'))).toBe(true);
    expect(verify(null, signed(checkpoint.seq + 1), key, Buffer.from(checkpoint.signature, 'base64'))).toBe(false);
    // The private key is nowhere in the database.
    const [found] = await queryRows<{ n: unknown }>(
      t.app.infra.database.db,
      sql`select count(*) as n from audit_checkpoints where signature like '%PRIVATE%' or key_id like '%PRIVATE%'`,
    );
    expect(Number(found!.n)).toBe(0);
    // Signing was itself audited, after the head it signed.
    const events = (await get('/api/v1/audit/events?event_type=AUDIT_CHECKPOINT_SIGNED', manager)).json().items as AuditEvent[];
    expect(events[0]).toMatchObject({ user_id: admin.user.id, seq: checkpoint.seq + 1 });
  });

  it('rejects UPDATE, DELETE and TRUNCATE of audit events in the database itself', async () => {
    const db = t.app.infra.database.db;
    await expectAppendOnly(db.execute(sql`update audit_events set details = '{}'::jsonb where seq = 1`));
    await expectAppendOnly(db.execute(sql`delete from audit_events where seq = 1`));
    await expectAppendOnly(db.execute(sql`truncate audit_events`));
    // Setting the archive marker without an archive record does not open the door either.
    await expectAppendOnly(
      db.transaction(async (tx) => {
        await tx.execute(sql`select set_config('cdsa.audit_archive_through', '5', true)`);
        await tx.execute(sql`delete from audit_events where seq = 1`);
      }),
    );
    await expectAppendOnly(db.execute(sql`delete from audit_checkpoints`));
    const [row] = await queryRows<{ n: unknown }>(db, sql`select count(*) as n from audit_events where seq = 1`);
    expect(Number(row!.n)).toBe(1);
  });

  it('fails closed: when the audit row cannot be written, the change it records is rolled back', async () => {
    const db = t.app.infra.database.db;
    await db.execute(sql`create table if not exists audit_fail_closed_probe (id int primary key)`);
    await db.execute(sql`
      create or replace function audit_fail_closed_probe_reject() returns trigger as $$
      begin raise exception 'audit storage unavailable'; end; $$ language plpgsql`);
    await db.execute(sql`create trigger audit_fail_closed_probe_trigger before insert on audit_events for each row execute function audit_fail_closed_probe_reject()`);
    try {
      await expect(
        db.transaction(async (tx) => {
          await tx.execute(sql`insert into audit_fail_closed_probe (id) values (1)`);
          await t.app.audit.record(tx, { eventType: 'USER_UPDATED', userId: admin.user.id, details: { probe: true } });
        }),
      ).rejects.toThrow();
      await expect(t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: {} })).rejects.toThrow();
    } finally {
      await db.execute(sql`drop trigger audit_fail_closed_probe_trigger on audit_events`);
    }
    const rows = await queryRows<{ id: number }>(db, sql`select id from audit_fail_closed_probe`);
    expect(rows).toEqual([]);
    // And the identity module, a real caller: a registration whose audit row fails leaves no user behind.
    await db.execute(sql`create trigger audit_fail_closed_probe_trigger before insert on audit_events for each row execute function audit_fail_closed_probe_reject()`);
    try {
      const response = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/register',
        payload: { username: 'failclosed', email: 'failclosed@example.test', password: 'Very-long-password-42!' },
      });
      expect(response.statusCode).toBe(500);
    } finally {
      await db.execute(sql`drop trigger audit_fail_closed_probe_trigger on audit_events`);
    }
    const users = await queryRows<{ n: unknown }>(db, sql`select count(*) as n from users where username = 'failclosed'`);
    expect(Number(users[0]!.n)).toBe(0);
    expect((await get('/api/v1/audit/verify', manager)).json().valid).toBe(true);
  });

  it('reports a row edited directly in the database, with its seq', async () => {
    const target = await t.app.audit.recordStandalone({ eventType: 'APPROVAL_DECISION', userId: manager.user.id, details: { decision: 'REJECTED' } });
    await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: analyst.user.id, details: {} });
    await tamper(t, sql`update audit_events set details = '{"decision":"APPROVED"}'::jsonb where seq = ${target.seq}`);
    try {
      const response = await get('/api/v1/audit/verify', admin);
      expect(response.json()).toMatchObject({ valid: false, first_invalid_seq: target.seq });
      expect(response.json().checked).toBe(target.seq - 1);
      // A range that ends before the edit still verifies; one that contains it does not.
      expect((await get(`/api/v1/audit/verify?to_seq=${target.seq - 1}`, admin)).json()).toMatchObject({ valid: true, checked: target.seq - 1 });
      expect((await get(`/api/v1/audit/verify?from_seq=${target.seq}&to_seq=${target.seq}`, admin)).json()).toMatchObject({ valid: false, first_invalid_seq: target.seq });
    } finally {
      await tamper(t, sql`update audit_events set details = '{"decision":"REJECTED"}'::jsonb where seq = ${target.seq}`);
    }
    expect((await get('/api/v1/audit/verify', admin)).json().valid).toBe(true);
  });

  it('detects a rewrite that recomputes the hashes, against the signed checkpoints', async () => {
    const target = await t.app.audit.recordStandalone({ eventType: 'VAULT_SECRET_ACCESSED', userId: manager.user.id, details: { secret_name: 'db' } });
    const checkpoint = await t.app.auditTrail.checkpoints.create(null);
    expect(checkpoint.seq).toBe(target.seq);
    // The attacker rewrites the event and its hash, and moves the head to match: the chain alone looks fine.
    const adminActor = { userId: admin.user.id, username: admin.user.username, role: 'ADMIN' as const, sessionId: randomUUID() };
    const forged = { ...(await t.app.auditTrail.queries.getEvent(adminActor, target.id)) };
    forged.details = { secret_name: 'other' };
    const forgedHash = hashEvent(forged.prev_hash, forged);
    await tamper(t, sql`update audit_events set details = ${JSON.stringify(forged.details)}::jsonb, hash = ${forgedHash} where seq = ${target.seq}`);
    const nextSeq = target.seq + 1;
    const next = await queryRows<{ seq: number }>(t.app.infra.database.db, sql`select seq from audit_events where seq = ${nextSeq}`);
    expect(next).toHaveLength(1);
    try {
      const report = await t.app.auditTrail.verifier.verify();
      expect(report.valid).toBe(false);
      expect(report.first_invalid_seq).toBe(target.seq);
      expect(report.reason).toMatch(/checkpoint/);
    } finally {
      await tamper(t, sql`update audit_events set details = '{"secret_name":"db"}'::jsonb, hash = ${target.hash} where seq = ${target.seq}`);
    }
  });

  it('detects truncation of the tail against a checkpoint, even when the attacker rewinds the head', async () => {
    for (let i = 0; i < 5; i += 1) await t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: { i } });
    const checkpoint = await t.app.auditTrail.checkpoints.create(null);
    const keep = checkpoint.seq - 3;
    const kept = await queryRows<{ hash: string }>(t.app.infra.database.db, sql`select hash from audit_events where seq = ${keep}`);
    await tamper(
      t,
      sql`create table audit_events_saved as select * from audit_events where seq > ${keep}`,
      sql`create table audit_checkpoints_saved as select * from audit_checkpoints`,
      sql`create table audit_chain_head_saved as select * from audit_chain_head`,
      sql`delete from audit_events where seq > ${keep}`,
      sql`update audit_chain_head set seq = ${keep}, hash = ${kept[0]!.hash} where id = 1`,
    );
    try {
      // The stored checkpoints give it away...
      const stored = await get('/api/v1/audit/verify', admin);
      expect(stored.json()).toMatchObject({ valid: false, first_invalid_seq: keep + 1, head_seq: keep });
      // ...and when the attacker removes those too, the exported checkpoint file still does.
      await tamper(t, sql`delete from audit_checkpoints`);
      expect((await t.app.auditTrail.verifier.verify()).valid).toBe(true);
      const external = await t.app.auditTrail.verifier.verify({ checkpoints: [checkpoint] });
      expect(external).toMatchObject({ valid: false, first_invalid_seq: keep + 1 });
      expect(external.reason).toMatch(/truncated/);
      // A forged checkpoint (not signed by the audit key) is refused rather than trusted.
      const forged = await t.app.auditTrail.verifier.verify({ checkpoints: [{ ...checkpoint, seq: keep }] });
      expect(forged.valid).toBe(false);
      expect(forged.reason).toMatch(/signature/);
    } finally {
      // Put back what the attacker removed.
      await tamper(
        t,
        sql`insert into audit_events select * from audit_events_saved`,
        sql`insert into audit_checkpoints select * from audit_checkpoints_saved on conflict (id) do nothing`,
        sql`update audit_chain_head h set seq = s.seq, hash = s.hash from audit_chain_head_saved s where h.id = s.id`,
        sql`drop table audit_events_saved`,
        sql`drop table audit_checkpoints_saved`,
        sql`drop table audit_chain_head_saved`,
      );
    }
    expect((await get('/api/v1/audit/verify', admin)).json().valid).toBe(true);
  });
});

/** The database's own error, under the driver's "Failed query" wrapper. */
async function expectAppendOnly(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => null,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(Error);
  const cause = (error as Error & { cause?: unknown }).cause;
  expect(cause instanceof Error ? cause.message : (error as Error).message).toMatch(/append-only/);
}

import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/cli/commands/audit.js';
import { queryRows } from '../../src/db/client.js';
import { hashEvent } from '../../src/modules/audit/audit.chain.js';
import { keyUnkeyedEvents } from '../../src/modules/audit/audit.keying.js';
import { createAuditMacKeyring } from '../../src/modules/audit/audit.mac.js';
import { createAuditRepository } from '../../src/modules/audit/audit.repository.js';
import { createFileSink } from '../../src/modules/audit/audit.sink.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { snapshotAudit, storedEvents, tamper } from './tamper.js';

/** The database's own refusal, under the driver's "Failed query" wrapper. */
async function refused(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(Error);
  const cause = (error as Error & { cause?: unknown }).cause;
  expect(cause instanceof Error ? cause.message : (error as Error).message).toMatch(pattern);
}

/** A well-formed stored event, for the sinks' own tests. */
async function storedEventsOf() {
  return [
    {
      id: randomUUID(),
      seq: 1,
      event_type: 'LOGIN_FAILED',
      user_id: null,
      session_id: null,
      resource_type: null,
      resource_id: null,
      details: {},
      ip_address: null,
      user_agent: null,
      created_at: new Date().toISOString(),
      prev_hash: '0'.repeat(64),
      hash: 'a'.repeat(64),
      mac: null,
    },
  ];
}

const noFiles = { checkpoint: [] as string[], publicKey: [] as string[] };

describe('audit trail integrity against someone with the database credentials', () => {
  let t: TestApp;
  let dir: string;
  let manager: TestUser;
  let admin: TestUser;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-integrity-'));
    t = await buildTestApp();
    admin = await createUser(t, { role: 'ADMIN' });
    manager = await createUser(t, { role: 'MANAGER' });
    for (let i = 0; i < 6; i += 1) await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: manager.user.id, details: { i } });
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const db = () => t.app.infra.database.db;
  const verifyApi = async () => (await t.app.inject({ method: 'GET', url: '/api/v1/audit/verify', headers: admin.headers })).json();

  it('refuses a forged, backdated decision inserted with plain SQL, even when the head is moved to it', async () => {
    const checkpointFile = path.join(dir, 'cp.json');
    fs.writeFileSync(checkpointFile, JSON.stringify(await t.app.auditTrail.checkpoints.create(null)));
    const restore = await snapshotAudit(t);
    try {
      // What the review did: no trigger switched off, only INSERT and UPDATE, with a correctly computed hash.
      const head = await createAuditRepository().head(db());
      const forged = {
        id: randomUUID(),
        seq: head.seq + 1,
        event_type: 'APPROVAL_DECISION',
        user_id: manager.user.id,
        session_id: null,
        resource_type: 'approval',
        resource_id: randomUUID(),
        details: { decision: 'APPROVED' },
        ip_address: '10.0.0.7',
        user_agent: 'console',
        created_at: new Date(Date.now() - 7 * 86_400_000).toISOString(),
      };
      const hash = hashEvent(head.hash, forged);
      await db().execute(sql`insert into audit_events (id, seq, event_type, user_id, resource_type, resource_id, details, ip_address, user_agent, created_at, prev_hash, hash)
        values (${forged.id}, ${forged.seq}, ${forged.event_type}, ${forged.user_id}, ${forged.resource_type}, ${forged.resource_id}, ${JSON.stringify(forged.details)}::jsonb,
                ${forged.ip_address}, ${forged.user_agent}, ${forged.created_at}::timestamptz, ${head.hash}, ${hash})`);
      await db().execute(sql`update audit_chain_head set seq = ${forged.seq}, hash = ${hash} where id = 1`);
      // Real events chain onto it afterwards; that must not launder it.
      await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: manager.user.id, details: { after: true } });

      expect(await verifyApi()).toMatchObject({ valid: false, first_invalid_seq: forged.seq });
      const cli = await verifyDatabase(t.app, { ...noFiles, checkpoint: [checkpointFile] });
      expect(cli).toMatchObject({ valid: false, first_invalid_seq: forged.seq });
      expect(cli.reason).toMatch(/carries no MAC/);
      // The same forgery with a MAC copied from a genuine event does not verify either.
      await tamper(t, sql`update audit_events set mac = (select mac from audit_events where seq = ${head.seq}) where seq = ${forged.seq}`);
      expect((await t.app.auditTrail.verifier.verify()).reason).toMatch(/MAC that does not verify/);
    } finally {
      await restore();
    }
    expect(await verifyApi()).toMatchObject({ valid: true });
  });

  it('finds an event dated before its predecessor, even with valid hashes and MACs', async () => {
    const restore = await snapshotAudit(t);
    try {
      // Only a holder of the key could write this; the check stands on its own all the same.
      const keyring = createAuditMacKeyring(t.secrets.auditHmacKeys);
      const events = await storedEvents(t);
      const target = events[events.length - 1]!;
      const backdated = { ...target, created_at: new Date(Date.parse(events[events.length - 2]!.created_at) - 60_000).toISOString() };
      const hash = hashEvent(backdated.prev_hash, backdated);
      await tamper(
        t,
        sql`update audit_events set created_at = ${backdated.created_at}::timestamptz, hash = ${hash}, mac = ${keyring.mac(hash)} where seq = ${target.seq}`,
        sql`update audit_chain_head set hash = ${hash} where id = 1`,
      );
      const report = await t.app.auditTrail.verifier.verify();
      expect(report).toMatchObject({ valid: false, first_invalid_seq: target.seq });
      expect(report.reason).toMatch(/backwards/);
    } finally {
      await restore();
    }
  });

  it('never lets the chain head move back or disappear', async () => {
    await refused(db().execute(sql`update audit_chain_head set seq = seq - 1 where id = 1`), /only moves forward/);
    await refused(db().execute(sql`update audit_chain_head set hash = ${'f'.repeat(64)} where id = 1`), /only moves forward/);
    await refused(db().execute(sql`delete from audit_chain_head`), /only moves forward/);
    await refused(db().execute(sql`truncate audit_chain_head`), /append-only/);
    await refused(db().execute(sql`insert into audit_chain_head (id, seq, hash) values (2, 0, ${'0'.repeat(64)})`), /only moves forward/);
    // A MAC can be given once to a row that has none, nothing else.
    await refused(db().execute(sql`update audit_events set mac = null where seq = 1`), /append-only/);
    await refused(db().execute(sql`update audit_events set mac = mac, details = '{}'::jsonb where seq = 1`), /append-only/);
  });

  it('refuses a DELETE behind a forged archive record and the archive setting (no superuser, no trigger switched off)', async () => {
    const [first] = await queryRows<{ seq: unknown; prev_hash: string; hash: string }>(db(), sql`select seq, prev_hash, hash from audit_events order by seq limit 1`);
    await refused(
      db().transaction(async (tx) => {
        await tx.execute(sql`insert into audit_archives (from_seq, to_seq, first_prev_hash, last_hash, event_count, file_name, file_sha256, archived_at, key_id, signature)
          values (1, 3, ${first!.prev_hash}, ${first!.hash}, 3, 'forged.jsonl', ${'0'.repeat(64)}, now(), ${t.app.auditTrail.signer.keyId}, 'Zm9yZ2Vk')`);
        await tx.execute(sql`select set_config('cdsa.audit_archive_through', '3', true)`);
        await tx.execute(sql`delete from audit_events where seq <= 3`);
      }),
      /append-only/,
    );
    const [count] = await queryRows<{ n: unknown }>(db(), sql`select count(*) as n from audit_events where seq <= 3`);
    expect(Number(count!.n)).toBe(3);
  });

  it('keys rows written before the chain had a key once, at start-up, and never a row forged after that', async () => {
    const restore = await snapshotAudit(t);
    try {
      // The state after an upgrade: the same chain, no MACs.
      await tamper(t, sql`update audit_events set mac = null`);
      expect((await t.app.auditTrail.verifier.verify()).reason).toMatch(/carries no MAC/);
      const repository = createAuditRepository();
      const keyring = createAuditMacKeyring(t.secrets.auditHmacKeys);
      const deps = { db: db(), repository, keyring, recorder: t.app.audit, batchSize: 7 };
      const head = await repository.head(db());
      expect(await keyUnkeyedEvents(deps)).toEqual({ keyed: head.seq, through_seq: head.seq });
      const cutOver = (await storedEvents(t)).at(-1)!;
      expect(cutOver).toMatchObject({ event_type: 'AUDIT_CHAIN_KEYED', details: { keyed_events: head.seq, through_seq: head.seq, key_id: 'test-m1' } });
      expect(await t.app.auditTrail.verifier.verify()).toMatchObject({ valid: true });

      // An unkeyed row appended later is a forgery: keying again leaves it alone.
      const forged = { ...cutOver, id: randomUUID(), seq: cutOver.seq + 1, prev_hash: cutOver.hash, details: {} };
      const hash = hashEvent(cutOver.hash, forged);
      await db().execute(sql`insert into audit_events (id, seq, event_type, details, created_at, prev_hash, hash)
        values (${forged.id}, ${forged.seq}, 'LOGIN_SUCCEEDED', '{}'::jsonb, now(), ${cutOver.hash}, ${hash})`);
      await db().execute(sql`update audit_chain_head set seq = ${forged.seq}, hash = ${hash} where id = 1`);
      expect(await keyUnkeyedEvents(deps)).toEqual({ keyed: 0, through_seq: null });
      expect(await t.app.auditTrail.verifier.verify()).toMatchObject({ valid: false, first_invalid_seq: forged.seq });
    } finally {
      await restore();
    }
  });
});

describe('the audit sink file', () => {
  let t: TestApp;
  let dir: string;
  let sinkFile: string;
  let manager: TestUser;
  let admin: TestUser;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-sink-'));
    sinkFile = path.join(dir, 'sink', 'audit.jsonl');
    t = await buildTestApp({ env: { AUDIT_SINK_FILE: sinkFile } });
    admin = await createUser(t, { role: 'ADMIN' });
    manager = await createUser(t, { role: 'MANAGER' });
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const db = () => t.app.infra.database.db;
  const verifyApi = async () => (await t.app.inject({ method: 'GET', url: '/api/v1/audit/verify', headers: admin.headers })).json();

  it('writes every committed event to the sink with its hash, MAC and transaction, and never a rolled-back one as committed', async () => {
    const row = await t.app.audit.recordStandalone({ eventType: 'VAULT_SECRET_ACCESSED', userId: manager.user.id, details: { secret_name: 'db' } });
    await db()
      .transaction(async (tx) => {
        await t.app.audit.record(tx, { eventType: 'USER_UPDATED', userId: admin.user.id, details: { rolled_back: true } });
        throw new Error('the change failed after its audit row');
      })
      .catch(() => undefined);
    const lines = fs.readFileSync(sinkFile, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ kind: 'sink_opened', after_seq: 0 });
    const written = lines.find((line) => line.id === row.id);
    expect(written).toMatchObject({ kind: 'audit_event', seq: row.seq, hash: row.hash, mac: row.mac, xid: expect.stringMatching(/^\d+$/) });
    expect(lines.some((line) => (line.details as { rolled_back?: boolean } | undefined)?.rolled_back)).toBe(true);
    // The rolled-back entry is recognised as such; everything else matches in both directions.
    const report = await verifyDatabase(t.app, { ...noFiles, sink: [sinkFile] });
    expect(report).toMatchObject({ valid: true, sink: { first_invalid_seq: null } });
    expect(report.sink!.checked).toBe(report.checked);
    expect(fs.statSync(sinkFile).mode & 0o777).toBe(0o600);
  });

  it('detects a truncated tail after the last checkpoint, with the head rewound and the checkpoints gone, from the sink', async () => {
    await t.app.auditTrail.checkpoints.createPeriodic();
    for (let i = 0; i < 4; i += 1) await t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: { i } });
    const restore = await snapshotAudit(t);
    try {
      const events = await storedEvents(t);
      const keep = events[events.length - 3]!;
      await tamper(
        t,
        sql`delete from audit_events where seq > ${keep.seq}`,
        sql`update audit_chain_head set seq = ${keep.seq}, hash = ${keep.hash}, created_at = ${keep.created_at}::timestamptz where id = 1`,
        sql`delete from audit_checkpoints`,
      );
      // What the review saw: the database alone cannot tell.
      expect(await verifyApi()).toMatchObject({ valid: true });
      const report = await verifyDatabase(t.app, { ...noFiles, sink: [sinkFile] });
      expect(report).toMatchObject({ valid: false, first_invalid_seq: keep.seq + 1 });
      expect(report.reason).toMatch(/committed \(audit sink/);
    } finally {
      await restore();
    }
  });

});

/** A SIEM collector: a real HTTP server that keeps what it accepts, and refuses everything while `refusing`. */
async function collector() {
  const received: Record<string, unknown>[] = [];
  const state = { refusing: false };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      if (state.refusing || request.headers.authorization !== 'Bearer collector-token') {
        response.writeHead(503).end();
        return;
      }
      for (const line of body.trimEnd().split('\n')) received.push(JSON.parse(line) as Record<string, unknown>);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/audit`, received, state, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('audit sinks: failing closed, and several instances', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-sinks-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('does not start when its sink file cannot be written, and a sink that refuses writes fails the append', async () => {
    const blocker = path.join(dir, 'not-a-directory');
    fs.writeFileSync(blocker, '');
    // Start-up records events (the built-in tools): with nowhere to write them, the service does not come up.
    await expect(buildTestApp({ env: { AUDIT_SINK_FILE: path.join(blocker, 'audit.jsonl') } })).rejects.toThrow(/audit/);
    const full = createFileSink('/dev/full');
    const [event] = await storedEventsOf();
    await expect(full.write([event!], '1')).rejects.toThrow(/ENOSPC/);
    await full.close();
  });

  it('sends every append to an HTTP collector, and answers 503 with no change behind when no sink accepts it', async () => {
    const siem = await collector();
    const t = await buildTestApp({ env: { AUDIT_SINK_URL: siem.url, AUDIT_SINK_TOKEN: 'collector-token', AUDIT_SINK_TIMEOUT_MS: '2000' } });
    try {
      const accepted = await t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: { reason: 'unknown_user' } });
      expect(siem.received.find((line) => line.id === accepted.id)).toMatchObject({ kind: 'audit_event', seq: accepted.seq, hash: accepted.hash, mac: accepted.mac });

      siem.state.refusing = true;
      const before = await createAuditRepository().head(t.app.infra.database.db);
      const username = `sinkless_${randomUUID().slice(0, 8)}`;
      const response = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/register',
        payload: { username, email: `${username}@example.test`, password: 'Very-long-password-42!' },
      });
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().detail).toMatch(/audit/);
      const users = await queryRows<{ n: unknown }>(t.app.infra.database.db, sql`select count(*) as n from users where username = ${username}`);
      expect(Number(users[0]!.n)).toBe(0);
      await expect(t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: {} })).rejects.toThrow(/sink/);
      expect((await createAuditRepository().head(t.app.infra.database.db)).seq).toBe(before.seq);

      siem.state.refusing = false;
      expect((await t.app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { username, email: `${username}@example.test`, password: 'Very-long-password-42!' } })).statusCode).toBe(201);
    } finally {
      await t.close();
      await siem.close();
    }
  });

  it('verifies several instances against all their sink files, notices one that is missing, and works while one of two sinks fails', async () => {
    const siem = await collector();
    siem.state.refusing = true;
    // The first instance also has a collector that refuses everything: its file still takes every append.
    const first = await buildTestApp({ env: { AUDIT_SINK_FILE: path.join(dir, 'a.jsonl'), AUDIT_SINK_URL: siem.url } });
    const second = await buildTestApp({ share: first, env: { AUDIT_SINK_FILE: path.join(dir, 'b.jsonl') } });
    try {
      for (let i = 0; i < 4; i += 1) {
        await first.app.audit.recordStandalone({ eventType: 'USER_QUERY', details: { instance: 'a', i } });
        await second.app.audit.recordStandalone({ eventType: 'USER_QUERY', details: { instance: 'b', i } });
      }
      const both = await verifyDatabase(first.app, { ...noFiles, sink: [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')] });
      expect(both).toMatchObject({ valid: true });
      expect(both.sink!.checked).toBe(both.checked);
      const one = await verifyDatabase(first.app, { ...noFiles, sink: [path.join(dir, 'a.jsonl')] });
      expect(one.valid).toBe(false);
      expect(one.reason).toMatch(/in no audit sink/);
    } finally {
      await second.close();
      await first.close();
      await siem.close();
    }
  });
});

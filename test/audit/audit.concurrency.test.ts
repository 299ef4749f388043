import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import type { AuditEventInput } from '../../src/modules/audit/audit.service.js';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';

const WRITERS = 60;
const PER_WRITER = 5;

async function expectGapFreeValidChain(t: TestApp, expectedAtLeast: number): Promise<void> {
  const [stats] = await queryRows<{ n: unknown; min: unknown; max: unknown; distinct_prev: unknown }>(
    t.app.infra.database.db,
    sql`select count(*) as n, min(seq) as min, max(seq) as max, count(distinct prev_hash) as distinct_prev from audit_events`,
  );
  const count = Number(stats!.n);
  expect(count).toBeGreaterThanOrEqual(expectedAtLeast);
  expect(Number(stats!.min)).toBe(1);
  expect(Number(stats!.max)).toBe(count);
  // No fork: every event links to a different predecessor.
  expect(Number(stats!.distinct_prev)).toBe(count);
  const report = await t.app.auditTrail.verifier.verify();
  expect(report).toMatchObject({ valid: true, checked: count, head_seq: count, first_invalid_seq: null });
}

/** A writer mixing the three ways services append: standalone, one event in a transaction, several in one. */
async function writer(t: TestApp, id: number): Promise<void> {
  const db = t.app.infra.database.db;
  const event = (i: number): AuditEventInput => ({ eventType: 'TOOL_CALL_COMPLETED', resourceType: 'writer', resourceId: String(id), details: { i } });
  for (let i = 0; i < PER_WRITER; i += 1) {
    switch ((id + i) % 3) {
      case 0:
        await t.app.audit.recordStandalone(event(i));
        break;
      case 1:
        await db.transaction((tx) => t.app.audit.record(tx, event(i)));
        break;
      default:
        await db.transaction((tx) => t.app.audit.recordMany(tx, [event(i), { ...event(i), eventType: 'TOOL_CALL_INITIATED' }]));
    }
  }
}

describe('audit appends under concurrency', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`keeps one gap-free valid chain with ${WRITERS} concurrent writers`, async () => {
    await Promise.all(Array.from({ length: WRITERS }, (_, id) => writer(t, id)));
    await expectGapFreeValidChain(t, WRITERS * PER_WRITER);
  });

  it('keeps the chain valid with concurrent API requests that audit', async () => {
    // Eight accounts, five logins each: concurrent attempts on one account beyond its failure limit are throttled.
    const users = await Promise.all(Array.from({ length: 8 }, () => createUser(t)));
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.app.inject({
          method: 'POST',
          url: '/api/v1/auth/login',
          payload: { username: users[i % 8]!.user.username, password: users[i % 8]!.password },
        }),
      ),
    );
    expect(responses.filter((r) => r.statusCode !== 200).map((r) => r.body)).toEqual([]);
    await expectGapFreeValidChain(t, WRITERS * PER_WRITER + 40);
  });
});

describe.runIf(multiInstance)('audit appends from two instances sharing the database', () => {
  let first: TestApp;
  let second: TestApp;
  beforeAll(async () => {
    first = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
    second = await buildTestApp({ share: first, env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it('produces one gap-free valid chain', async () => {
    await Promise.all(Array.from({ length: WRITERS }, (_, id) => writer(id % 2 === 0 ? first : second, id)));
    await expectGapFreeValidChain(first, WRITERS * PER_WRITER);
    // Both instances see and verify the same head.
    const [a, b] = await Promise.all([first.app.auditTrail.verifier.verify(), second.app.auditTrail.verifier.verify()]);
    expect(a.head_hash).toBe(b.head_hash);
    expect(b.valid).toBe(true);
  });
});

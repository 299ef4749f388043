import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { CSV_COLUMNS } from '../../src/modules/audit/audit.report-render.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';

describe('compliance reports', { timeout: 90_000 }, () => {
  let t: TestApp;
  let admin: TestUser;
  let otherAdmin: TestUser;
  let manager: TestUser;
  let analyst: TestUser;
  const from = new Date(Date.now() - 3_600_000).toISOString();

  beforeAll(async () => {
    // Jobs start later, so a report is observably pending first.
    t = await buildTestApp({ processJobs: false, env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
    admin = await createUser(t, { role: 'ADMIN' });
    otherAdmin = await createUser(t, { role: 'ADMIN' });
    manager = await createUser(t, { role: 'MANAGER' });
    analyst = await createUser(t, { role: 'ANALYST' });
    const audit = t.app.audit;
    await audit.recordStandalone({ eventType: 'SECURITY_ALERT', userId: analyst.user.id, details: { alert: 'impossible travel', country: 'XX' } });
    await audit.recordStandalone({ eventType: 'TOKEN_REUSE_DETECTED', userId: analyst.user.id, details: { token_family_revoked: true } });
    await audit.recordStandalone({ eventType: 'APPROVAL_REQUESTED', userId: analyst.user.id, resourceType: 'approval', resourceId: 'appr-1', details: {} });
    await audit.recordStandalone({ eventType: 'APPROVAL_DECISION', userId: manager.user.id, resourceType: 'approval', resourceId: 'appr-1', details: { decision: 'APPROVED' } });
    await audit.recordStandalone({ eventType: 'PII_REDACTED', userId: analyst.user.id, details: { counts: { EMAIL: 2, PHONE: 1 } } });
    await audit.recordStandalone({ eventType: 'PII_REDACTED', userId: analyst.user.id, details: { entities: [{ type: 'SSN' }, { type: 'EMAIL' }] } });
    await audit.recordStandalone({ eventType: 'USER_QUERY', userId: analyst.user.id, details: { note: '=HYPERLINK("http://evil")' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  const request = (user: TestUser, format: string) =>
    t.app.inject({ method: 'POST', url: '/api/v1/audit/report', headers: user.headers, payload: { from, to: new Date(Date.now() + 60_000).toISOString(), format } });
  const read = (user: TestUser, id: string) => t.app.inject({ method: 'GET', url: `/api/v1/audit/report/${id}`, headers: user.headers });

  async function whenReady(id: string) {
    return vi.waitFor(
      async () => {
        const response = await read(admin, id);
        if (response.statusCode !== 200) throw new Error(`still ${response.statusCode}`);
        return response;
      },
      { timeout: 60_000, interval: 50 },
    );
  }

  it('needs audit:report to request, and only the requester or an admin reads it', async () => {
    expect((await request(manager, 'json')).statusCode).toBe(403);
    expect((await request(analyst, 'json')).statusCode).toBe(403);
    const accepted = await request(admin, 'json');
    expect(accepted.statusCode).toBe(202);
    const { report_id: id } = accepted.json();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const pending = await read(admin, id);
    expect(pending.statusCode).toBe(202);
    expect(pending.json()).toMatchObject({ report_id: id, status: 'pending', format: 'json' });
    expect((await read(otherAdmin, id)).statusCode).toBe(202);
    expect((await read(manager, id)).statusCode).toBe(404);
    expect((await read(analyst, id)).statusCode).toBe(404);
    expect((await read(admin, '00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    expect((await read(admin, 'nope')).statusCode).toBe(422);

    await t.app.infra.jobs.start();
    const ready = await whenReady(id);
    expect(ready.headers['content-type']).toContain('application/json');
    expect(ready.headers['content-disposition']).toMatch(/^attachment; filename="cdsa-audit-report-.*\.json"$/);
    const body = ready.json();
    expect(body.report_id).toBe(id);
    expect(body.security).toMatchObject({ security_alerts: 2, security_alert_events: 1, token_reuse_detected: 1 });
    expect(body.security.alerts.map((alert: { event_type: string }) => alert.event_type)).toEqual(['SECURITY_ALERT', 'TOKEN_REUSE_DETECTED']);
    expect(body.approvals.decisions).toEqual([
      expect.objectContaining({ decision: 'APPROVED', count: 1, avg_turnaround_seconds: expect.any(Number) }),
    ]);
    expect(Object.fromEntries(body.redactions.entities_by_type.map((row: { type: string; count: number }) => [row.type, row.count]))).toEqual({
      EMAIL: 3,
      PHONE: 1,
      SSN: 1,
    });
    expect(body.chain.verified).toBe(true);
    // The period is anchored by a signed checkpoint at or after its last event.
    expect(body.chain.checkpoint.seq).toBeGreaterThanOrEqual(body.chain.last_seq);
    expect(body.events.length).toBe(body.totals.events);
    expect(body.events.every((event: { hash: string }) => /^[0-9a-f]{64}$/.test(event.hash))).toBe(true);

    // Generating it was audited and the requester notified.
    const [generated] = await queryRows<{ user_id: string; details: { format: string } }>(
      t.app.infra.database.db,
      sql`select user_id, details from audit_events where event_type = 'REPORT_GENERATED' and resource_id = ${id}`,
    );
    expect(generated).toMatchObject({ user_id: admin.user.id, details: { format: 'json' } });
    const notifications = await t.app.inject({ method: 'GET', url: '/api/v1/notifications', headers: admin.headers });
    expect(notifications.statusCode).toBe(200);
    expect(notifications.json().items).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'LONG_RUNNING_TASK_COMPLETED', data: expect.objectContaining({ report_id: id }) })]),
    );
  });

  it('is read with the permission the reader holds now: an admin demoted since requesting it no longer gets it', async () => {
    await t.app.infra.jobs.start();
    const former = await createUser(t, { role: 'ADMIN' });
    const accepted = await request(former, 'json');
    expect(accepted.statusCode).toBe(202);
    const { report_id: id } = accepted.json();
    await whenReady(id);
    expect((await read(former, id)).statusCode).toBe(200);
    const demoted = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${former.user.id}`, headers: otherAdmin.headers, payload: { role: 'ANALYST' } });
    expect(demoted.statusCode).toBe(200);
    expect((await read(former, id)).statusCode).toBe(404);
  });

  it('renders a real PDF', async () => {
    const { report_id: id } = (await request(admin, 'pdf')).json();
    const ready = await whenReady(id);
    expect(ready.headers['content-type']).toBe('application/pdf');
    expect(ready.headers['content-disposition']).toMatch(/\.pdf"$/);
    const bytes = ready.rawPayload;
    expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(bytes.subarray(-6).toString('latin1')).toContain('%%EOF');
    expect(Number(ready.headers['content-length'])).toBe(bytes.length);
  });

  it('writes CSV with one row per event, safe to open in a spreadsheet', async () => {
    const agent = "x;=cmd|' /C calc'!A0";
    await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', userId: analyst.user.id, details: {}, context: { ipAddress: '192.0.2.1', userAgent: agent, requestId: 'csv' } });
    const { report_id: id } = (await request(admin, 'csv')).json();
    const ready = await whenReady(id);
    expect(ready.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = ready.body.trimEnd().split('\r\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    const [counted] = await queryRows<{ n: unknown }>(
      t.app.infra.database.db,
      sql`select count(*) as n from audit_events where created_at >= ${from}::timestamptz and created_at <= now()`,
    );
    expect(lines.length - 1).toBeGreaterThanOrEqual(Number(counted!.n) - 1);
    const formula = lines.find((line) => line.includes('HYPERLINK'));
    expect(formula).toBeDefined();
    expect(formula).not.toMatch(/,=HYPERLINK/);
    // Every field quoted; a formula after a `;` (a separator in many locales) defused too.
    const withAgent = lines.find((line) => line.includes('cmd|'));
    expect(withAgent).toContain(`"x;'=cmd|' /C calc'!A0"`);
    expect(withAgent).not.toMatch(/[,;]=/);
    expect(lines.slice(1).every((line) => line.startsWith('"'))).toBe(true);
  });

  it('streams a report over many events in chunks rather than one value', async () => {
    const db = t.app.infra.database.db;
    // 4,000 events with bulky details make a CSV of several megabytes.
    for (let batch = 0; batch < 4; batch += 1) {
      await db.transaction((tx) =>
        t.app.audit.recordMany(
          tx,
          Array.from({ length: 1_000 }, (_, i) => ({ eventType: 'USER_QUERY' as const, userId: analyst.user.id, details: { i, filler: 'x'.repeat(1_000) } })),
        ),
      );
    }
    const { report_id: id } = (await request(admin, 'csv')).json();
    const ready = await whenReady(id);
    const [chunks] = await queryRows<{ n: unknown; max: unknown }>(db, sql`select count(*) as n, max(length(data)) as max from audit_report_chunks where report_id = ${id}`);
    expect(Number(chunks!.n)).toBeGreaterThan(2);
    expect(Number(chunks!.max)).toBeLessThan(2 * 1024 * 1024);
    expect(ready.body.split('\r\n').filter((line) => line.includes('"filler')).length).toBe(4_000);
  });

  it('marks a report failed after its last attempt, with no internals in the message', async () => {
    const db = t.app.infra.database.db;
    await db.execute(sql`create or replace function audit_report_probe_reject() returns trigger as $$
      begin raise exception 'relation "report_storage" does not exist'; end; $$ language plpgsql`);
    await db.execute(sql`create trigger audit_report_probe before insert on audit_report_chunks for each row execute function audit_report_probe_reject()`);
    try {
      const { report_id: id } = (await request(admin, 'pdf')).json();
      const failed = await vi.waitFor(
        async () => {
          const response = await read(admin, id);
          if (response.json().status !== 'failed') throw new Error('not failed yet');
          return response;
        },
        { timeout: 60_000, interval: 100 },
      );
      expect(failed.statusCode).toBe(200);
      expect(failed.json()).toMatchObject({ status: 'failed', report_id: id, error: expect.any(String) });
      expect(failed.body).not.toContain('report_storage');
    } finally {
      await db.execute(sql`drop trigger audit_report_probe on audit_report_chunks`);
    }
  });
});

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { countsForAudit } from '../../src/modules/chat/chat.context.js';
import { extractPdf } from '../../src/modules/documents/documents.pdf.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';

interface ListedEvent {
  event_type: string;
  user_id: string | null;
  details: Record<string, unknown>;
}

/**
 * A compliance report's figures are recomputed here from the events the API lists for the same period: the report
 * must say what the trail says (no figure per type where entities were counted, no alert count that disagrees with
 * its own table), and name the people behind the ids.
 */
describe('compliance report figures against the events', { timeout: 120_000 }, () => {
  let t: TestApp;
  let admin: TestUser;
  let analyst: TestUser;
  let from: string;
  let to: string;

  beforeAll(async () => {
    t = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
    from = new Date(Date.now() - 1_000).toISOString();
    admin = await createUser(t, { role: 'ADMIN', fullName: 'Ada Auditor' });
    analyst = await createUser(t, { role: 'ANALYST', fullName: 'Ann Analyst' });
    // Written in the shape the chat turn writes it: one entry per type with its count (5 entities, 3 types).
    await t.app.audit.recordStandalone({
      eventType: 'PII_REDACTED',
      userId: analyst.user.id,
      resourceType: 'chat_session',
      details: { message_id: 'm-1', model: 'openai/gpt-4o-mini', provider: 'openai', ...countsForAudit({ EMAIL: 1, CREDIT_CARD: 2, IBAN: 2 }) },
    });
    // A real refresh-token reuse: the second use of the same refresh token.
    const refresh = () => t.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: analyst.refresh_token } });
    expect((await refresh()).statusCode).toBe(200);
    expect((await refresh()).statusCode).toBe(401);
    await t.app.audit.drain();
    to = new Date(Date.now() + 5).toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
  afterAll(async () => {
    await t?.close();
  });

  async function eventsOfPeriod(): Promise<ListedEvent[]> {
    const events: ListedEvent[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ from, to, limit: '200', ...(cursor ? { cursor } : {}) });
      const page = await t.app.inject({ method: 'GET', url: `/api/v1/audit/events?${query}`, headers: admin.headers });
      expect(page.statusCode).toBe(200);
      const body = page.json() as { items: ListedEvent[]; next_cursor: string | null };
      events.push(...body.items);
      cursor = body.next_cursor;
    } while (cursor);
    return events;
  }

  async function report(format: 'json' | 'pdf') {
    const accepted = await t.app.inject({ method: 'POST', url: '/api/v1/audit/report', headers: admin.headers, payload: { from, to, format } });
    expect(accepted.statusCode).toBe(202);
    const { report_id: id } = accepted.json() as { report_id: string };
    return vi.waitFor(
      async () => {
        const response = await t.app.inject({ method: 'GET', url: `/api/v1/audit/report/${id}`, headers: admin.headers });
        if (response.statusCode !== 200) throw new Error(`still ${response.statusCode}`);
        return response;
      },
      { timeout: 60_000, interval: 50 },
    );
  }

  /** Entities by type as the events record them (chat's `entities: [{type, count}]`). */
  function entitiesOf(events: ListedEvent[]): Record<string, number> {
    const byType: Record<string, number> = {};
    for (const event of events.filter((e) => e.event_type === 'PII_REDACTED')) {
      for (const entry of event.details.entities as { type: string; count: number }[]) byType[entry.type] = (byType[entry.type] ?? 0) + entry.count;
    }
    return byType;
  }

  it('JSON: totals, redaction entities, alerts and users agree with the listed events', async () => {
    const events = await eventsOfPeriod();
    const body = (await report('json')).json();

    expect(body.totals.events).toBe(events.length);
    const byType: Record<string, number> = {};
    for (const event of events) byType[event.event_type] = (byType[event.event_type] ?? 0) + 1;
    expect(Object.fromEntries(body.by_event_type.map((row: { event_type: string; count: number }) => [row.event_type, row.count]))).toEqual(byType);

    const entities = entitiesOf(events);
    expect(entities).toEqual({ EMAIL: 1, CREDIT_CARD: 2, IBAN: 2 });
    expect(body.redactions.entities_total).toBe(5);
    expect(Object.fromEntries(body.redactions.entities_by_type.map((row: { type: string; count: number }) => [row.type, row.count]))).toEqual(entities);

    const alerts = events.filter((event) => event.event_type === 'SECURITY_ALERT' || event.event_type === 'TOKEN_REUSE_DETECTED');
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(body.security.security_alerts).toBe(alerts.length);
    expect(body.security.alerts).toHaveLength(alerts.length);
    expect(body.security.token_reuse_detected).toBe(alerts.filter((event) => event.event_type === 'TOKEN_REUSE_DETECTED').length);
    expect(body.security.alerts.find((alert: { event_type: string }) => alert.event_type === 'TOKEN_REUSE_DETECTED')).toMatchObject({
      user_id: analyst.user.id,
      username: analyst.user.username,
    });

    const perUser: Record<string, number> = {};
    for (const event of events) if (event.user_id) perUser[event.user_id] = (perUser[event.user_id] ?? 0) + 1;
    expect(body.totals.users).toBe(Object.keys(perUser).length);
    expect(body.by_user).toEqual(
      expect.arrayContaining([
        { user_id: analyst.user.id, username: analyst.user.username, full_name: 'Ann Analyst', count: perUser[analyst.user.id] },
        { user_id: admin.user.id, username: admin.user.username, full_name: 'Ada Auditor', count: perUser[admin.user.id] },
      ]),
    );
    expect(body.requested_by_user).toEqual({ username: admin.user.username, full_name: 'Ada Auditor' });
    expect(body.events).toHaveLength(events.length);
  });

  it('PDF: the printed figures are the same, and users appear by name', async () => {
    const events = await eventsOfPeriod();
    const pdf = await report('pdf');
    const { text } = await extractPdf(new Uint8Array(pdf.rawPayload));
    const alerts = events.filter((event) => event.event_type === 'SECURITY_ALERT' || event.event_type === 'TOKEN_REUSE_DETECTED').length;
    expect(text).toContain(`Events: ${events.length} `);
    expect(text).toContain('Entities redacted: 5');
    expect(text).toContain(`Security alerts: ${alerts} `);
    expect(text).not.toContain('Security alerts: 0');
    expect(text).toContain(analyst.user.username);
    expect(text).toContain('Ann Analyst');
    expect(text).toContain(`Requested by: ${admin.user.username} (Ada Auditor)`);
  });
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, decide, execute, executionRow, gatedWebhook, notificationsOf, startSink, waitFor, type Sink } from './helpers.js';

let sink: Sink;

beforeAll(async () => {
  sink = await startSink();
});

afterAll(async () => {
  await sink?.close();
});

async function approvalStatus(t: TestApp, id: string): Promise<string | undefined> {
  const [row] = await queryRows<{ status: string }>(t.app.infra.database.db, sql`SELECT status FROM approvals WHERE id = ${id}`);
  return row?.status;
}

describe('approval expiry', () => {
  let t: TestApp;
  let admin: TestUser;
  let analyst: TestUser;
  let manager: TestUser;

  beforeAll(async () => {
    t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort, APPROVAL_TTL_SECONDS: '1' } });
    admin = await createUser(t, { role: 'ADMIN' });
    analyst = await createUser(t, { role: 'ANALYST' });
    manager = await createUser(t, { role: 'MANAGER' });
  });

  afterAll(async () => {
    await t?.close();
  });

  it('expires a pending approval through its delayed job: never runs, requester notified, audited', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_expiring'));
    const response = await execute(t, analyst, 'transfer_expiring', { amount: 1, to: 'late' });
    expect(response.statusCode).toBe(202);
    const { approval_id, execution_id } = response.json() as { approval_id: string; execution_id: string };

    await waitFor(async () => (await approvalStatus(t, approval_id)) === 'EXPIRED', 'the approval to expire', 15_000);
    expect((await executionRow(t, execution_id))?.status).toBe('expired');

    const decided = await decide(t, manager, approval_id, 'APPROVED');
    expect(decided.statusCode).toBe(409);
    await t.app.tools.engine.runApproved(approval_id);
    expect(sink.calls.filter((call) => call.path === '/hook')).toHaveLength(0);

    const note = (await notificationsOf(t, 'APPROVAL_DECISION')).find((row) => row.data.approval_id === approval_id);
    expect(note).toMatchObject({ user_id: analyst.user.id, data: { status: 'EXPIRED' } });
    const audited = (await auditEvents(t, 'APPROVAL_EXPIRED')).filter((row) => row.resource_id === approval_id);
    expect(audited).toHaveLength(1);
  });
});

describe('approval expiry after a crash', () => {
  it('the recovery sweep (run at start-up and every minute) expires approvals whose expiry job was lost', async () => {
    // No job processing: the delayed expiry job never runs, as if the process holding it had died.
    const t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort, APPROVAL_TTL_SECONDS: '1' }, processJobs: false });
    try {
      const admin = await createUser(t, { role: 'ADMIN' });
      const analyst = await createUser(t, { role: 'ANALYST' });
      await createTool(t, admin, gatedWebhook(sink, 'transfer_orphaned'));
      const response = await execute(t, analyst, 'transfer_orphaned', { amount: 2, to: 'gone' });
      const { approval_id } = response.json() as { approval_id: string };

      expect(await t.app.approvals.sweep()).toMatchObject({ expired: 0 });
      expect(await approvalStatus(t, approval_id)).toBe('PENDING');
      const result = await waitFor(async () => {
        const swept = await t.app.approvals.sweep();
        return swept.expired > 0 ? swept : undefined;
      }, 'the sweep to expire the approval');
      expect(result.expired).toBe(1);
      expect(await approvalStatus(t, approval_id)).toBe('EXPIRED');
    } finally {
      await t.close();
    }
  });
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { executionArgsAad } from '../../src/modules/tools/tool-engine.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import {
  createTool,
  decide,
  execute,
  executionRow,
  gatedWebhook,
  notificationsOf,
  startSink,
  waitFor,
  waitForExecution,
  type Sink,
} from './helpers.js';

let t: TestApp;
let sink: Sink;
let admin: TestUser;
let analyst: TestUser;
let managers: TestUser[];

beforeAll(async () => {
  sink = await startSink();
  t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort } });
  admin = await createUser(t, { role: 'ADMIN' });
  analyst = await createUser(t, { role: 'ANALYST' });
  managers = [];
  for (let i = 0; i < 3; i += 1) managers.push(await createUser(t, { role: 'MANAGER' }));
});

afterAll(async () => {
  await t?.close();
  await sink?.close();
});

function hookCalls(): number {
  return sink.calls.filter((call) => call.path === '/hook').length;
}

async function requestGated(tool: string, args: Record<string, unknown>, as: TestUser = analyst): Promise<{ execution_id: string; approval_id: string }> {
  const response = await execute(t, as, tool, args);
  expect(response.statusCode, response.body).toBe(202);
  const body = response.json();
  expect(body.status).toBe('pending_approval');
  return body;
}

describe('approval gate on direct execution', () => {
  it("shows approvers the requester's username and full name, in the inbox, one approval and the decision", async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_named'));
    const named = await createUser(t, { role: 'ANALYST', fullName: 'Nora Named' });
    const pending = await requestGated('transfer_named', { amount: 5, to: 'acct-9' }, named);
    const expected = { username: named.user.username, full_name: 'Nora Named' };
    const inbox = await t.app.inject({ method: 'GET', url: '/api/v1/approvals?status=PENDING&limit=200', headers: managers[0]!.headers });
    expect(inbox.json().items.find((item: { id: string }) => item.id === pending.approval_id)?.requester).toEqual(expected);
    const one = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${pending.approval_id}`, headers: managers[0]!.headers });
    expect(one.json().requester).toEqual(expected);
    const decided = await decide(t, managers[0]!, pending.approval_id, 'REJECTED', 'not today');
    expect(decided.json().requester).toEqual(expected);
    const mine = await t.app.inject({ method: 'GET', url: '/api/v1/approvals/my-requests', headers: named.headers });
    expect(mine.json().items[0].requester).toEqual(expected);
  });

  it('runs nothing before approval and exactly once after it; the requester gets the result link', async () => {
    const tool = await createTool(t, admin, gatedWebhook(sink, 'transfer_once'));
    const before = hookCalls();
    const pending = await requestGated('transfer_once', { amount: 50, to: 'acct-1' });

    expect(hookCalls()).toBe(before);
    const execution = await t.app.inject({ method: 'GET', url: `/api/v1/tools/${tool.id}/executions/${pending.execution_id}`, headers: analyst.headers });
    expect(execution.json()).toMatchObject({ status: 'pending_approval', approval_id: pending.approval_id, args: { amount: 50, to: 'acct-1' } });

    // Approvers (not the requester) were told at once, with priority high.
    const requested = (await notificationsOf(t, 'APPROVAL_REQUESTED')).filter((row) => row.data.approval_id === pending.approval_id);
    const recipients = requested.map((row) => row.user_id).sort();
    expect(recipients).toEqual([admin, ...managers].map((user) => user.user.id).sort());
    expect(requested.every((row) => row.priority === 'high')).toBe(true);

    const decided = await decide(t, managers[0]!, pending.approval_id, 'APPROVED', 'looks right');
    expect(decided.statusCode, decided.body).toBe(200);
    expect(decided.json()).toMatchObject({ status: 'APPROVED', decisions: [{ approver_id: managers[0]!.user.id, decision: 'APPROVED', reason: 'looks right' }] });

    const done = await waitForExecution(t, pending.execution_id);
    expect(done.status).toBe('completed');
    expect(hookCalls()).toBe(before + 1);
    const hook = sink.calls.filter((call) => call.path === '/hook').at(-1)!;
    expect(JSON.parse(hook.body)).toEqual({ tool: 'transfer_once', args: { amount: 50, to: 'acct-1' }, execution_id: pending.execution_id });

    const link = `/api/v1/tools/${tool.id}/executions/${pending.execution_id}`;
    const notice = await waitFor(
      async () => (await notificationsOf(t, 'LONG_RUNNING_TASK_COMPLETED')).find((row) => row.data.execution_id === pending.execution_id),
      'the result notification',
    );
    expect(notice).toMatchObject({ user_id: analyst.user.id, data: { link, status: 'completed' } });
    const result = await t.app.inject({ method: 'GET', url: link, headers: analyst.headers });
    expect(result.json()).toMatchObject({ status: 'completed', result: { ok: true } });

    const decisionNotes = (await notificationsOf(t, 'APPROVAL_DECISION')).filter((row) => row.data.approval_id === pending.approval_id);
    expect(decisionNotes.map((row) => row.user_id)).toEqual([analyst.user.id]);

    // The approval allows one execution: deciding again is a conflict, and nothing runs again.
    expect((await decide(t, managers[1]!, pending.approval_id, 'APPROVED')).statusCode).toBe(409);
    await t.app.tools.engine.runApproved(pending.approval_id);
    expect(hookCalls()).toBe(before + 1);

    const initiated = (await auditEvents(t, 'TOOL_CALL_INITIATED')).filter((row) => row.resource_id === pending.execution_id);
    const completed = (await auditEvents(t, 'TOOL_CALL_COMPLETED')).filter((row) => row.resource_id === pending.execution_id);
    const requestedAudit = (await auditEvents(t, 'APPROVAL_REQUESTED')).filter((row) => row.resource_id === pending.approval_id);
    const decisionAudit = (await auditEvents(t, 'APPROVAL_DECISION')).filter((row) => row.resource_id === pending.approval_id);
    expect([initiated.length, completed.length, requestedAudit.length, decisionAudit.length]).toEqual([1, 1, 1, 1]);
    expect(JSON.stringify(initiated[0]!.details)).not.toContain('acct-1');
  });

  it('never runs a rejected call, and tells the requester why', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_rejected'));
    const before = hookCalls();
    const pending = await requestGated('transfer_rejected', { amount: 10, to: 'acct-2' });
    const rejected = await decide(t, managers[0]!, pending.approval_id, 'REJECTED', 'wrong account');
    expect(rejected.json()).toMatchObject({ status: 'REJECTED' });
    expect((await executionRow(t, pending.execution_id))?.status).toBe('rejected');

    await t.app.tools.engine.runApproved(pending.approval_id);
    expect(hookCalls()).toBe(before);
    const note = (await notificationsOf(t, 'APPROVAL_DECISION')).find((row) => row.data.approval_id === pending.approval_id);
    expect(note).toMatchObject({ user_id: analyst.user.id, data: { status: 'REJECTED' } });
  });

  it('refuses self-approval (403), deciders without approvals:decide (403) and approvers below the approver role (403)', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_admin_only', { approver_role: 'ADMIN' }));
    const fromManager = await requestGated('transfer_admin_only', { amount: 1, to: 'x' }, managers[0]!);
    expect((await decide(t, managers[0]!, fromManager.approval_id, 'APPROVED')).statusCode).toBe(403);
    expect((await decide(t, analyst, fromManager.approval_id, 'APPROVED')).statusCode).toBe(403);
    expect((await decide(t, managers[1]!, fromManager.approval_id, 'APPROVED')).statusCode).toBe(403);

    const fromAdmin = await requestGated('transfer_admin_only', { amount: 2, to: 'y' }, admin);
    expect((await decide(t, admin, fromAdmin.approval_id, 'APPROVED')).statusCode).toBe(403);

    const still = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/${fromManager.approval_id}`, headers: managers[0]!.headers });
    expect(still.json()).toMatchObject({ status: 'PENDING', decisions: [] });
  });

  it('needs the quorum: one approval of two leaves it pending; each approver decides once', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_quorum', { approvals_required: 2 }));
    const before = hookCalls();
    const pending = await requestGated('transfer_quorum', { amount: 99, to: 'acct-q' });

    const first = await decide(t, managers[0]!, pending.approval_id, 'APPROVED');
    expect(first.json()).toMatchObject({ status: 'PENDING', approvals_required: 2 });
    expect((await decide(t, managers[0]!, pending.approval_id, 'APPROVED')).statusCode).toBe(409);
    expect((await decide(t, managers[0]!, pending.approval_id, 'REJECTED')).statusCode).toBe(409);
    expect((await executionRow(t, pending.execution_id))?.status).toBe('pending_approval');
    expect(hookCalls()).toBe(before);

    const second = await decide(t, managers[1]!, pending.approval_id, 'APPROVED');
    expect(second.json()).toMatchObject({ status: 'APPROVED' });
    expect(second.json().decisions).toHaveLength(2);
    await waitForExecution(t, pending.execution_id);
    expect(hookCalls()).toBe(before + 1);
  });

  it('one rejection rejects even after a partial approval', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_quorum_reject', { approvals_required: 2 }));
    const pending = await requestGated('transfer_quorum_reject', { amount: 5, to: 'r' });
    await decide(t, managers[0]!, pending.approval_id, 'APPROVED');
    const rejected = await decide(t, managers[1]!, pending.approval_id, 'REJECTED');
    expect(rejected.json()).toMatchObject({ status: 'REJECTED' });
  });

  it('ten concurrent deciders produce one final state and at most one execution', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_race'));
    const deciders: TestUser[] = [...managers, admin];
    for (let i = deciders.length; i < 10; i += 1) deciders.push(await createUser(t, { role: 'MANAGER' }));
    const before = hookCalls();
    const pending = await requestGated('transfer_race', { amount: 7, to: 'race' });

    const responses = await Promise.all(deciders.map((user, i) => decide(t, user, pending.approval_id, i % 3 === 2 ? 'REJECTED' : 'APPROVED')));
    const ok = responses.filter((response) => response.statusCode === 200);
    expect(ok).toHaveLength(1);
    expect(responses.filter((response) => response.statusCode === 409)).toHaveLength(9);

    const final = ok[0]!.json().status as string;
    const [row] = await queryRows<{ status: string; decisions: number }>(
      t.app.infra.database.db,
      sql`SELECT a.status, (SELECT count(*)::int FROM approval_decisions d WHERE d.approval_id = a.id) AS decisions FROM approvals a WHERE a.id = ${pending.approval_id}`,
    );
    expect(row).toEqual({ status: final, decisions: 1 });
    if (final === 'APPROVED') {
      await waitForExecution(t, pending.execution_id);
      await Promise.all([t.app.tools.engine.runApproved(pending.approval_id), t.app.tools.engine.runApproved(pending.approval_id)]);
      expect(hookCalls()).toBe(before + 1);
    } else {
      expect(hookCalls()).toBe(before);
    }
  });

  it('with a quorum of three, ten concurrent approvers record exactly three decisions and run once', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_race_quorum', { approvals_required: 3 }));
    const deciders: TestUser[] = [...managers, admin];
    for (let i = deciders.length; i < 10; i += 1) deciders.push(await createUser(t, { role: 'MANAGER' }));
    const before = hookCalls();
    const pending = await requestGated('transfer_race_quorum', { amount: 8, to: 'race3' });

    const responses = await Promise.all(deciders.map((user) => decide(t, user, pending.approval_id, 'APPROVED')));
    expect(responses.filter((response) => response.statusCode === 200)).toHaveLength(3);
    expect(responses.filter((response) => response.statusCode === 409)).toHaveLength(7);
    await waitForExecution(t, pending.execution_id);
    expect(hookCalls()).toBe(before + 1);
  });

  it('refuses to run when the arguments were changed after approval', async () => {
    const tool = await createTool(t, admin, gatedWebhook(sink, 'transfer_tampered'));
    const before = hookCalls();
    // Approved only after the stored arguments were swapped: the job must refuse, as the digest no longer matches.
    const pending = await requestGated('transfer_tampered', { amount: 100, to: 'good' });
    const forged = t.app.fieldCipher.encrypt(JSON.stringify({ amount: 1_000_000, to: 'evil' }), executionArgsAad(pending.execution_id));
    await t.app.infra.database.db.execute(sql`UPDATE tool_executions SET encrypted_args = ${forged} WHERE id = ${pending.execution_id}`);

    await decide(t, managers[0]!, pending.approval_id, 'APPROVED');
    const done = await waitForExecution(t, pending.execution_id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/differ from the approved/);
    expect(hookCalls()).toBe(before);
    const failed = (await auditEvents(t, 'TOOL_CALL_FAILED')).find((row) => row.resource_id === pending.execution_id);
    expect(failed?.details).toMatchObject({ error_code: 'arguments_changed', approval_id: pending.approval_id });

    const view = await t.app.inject({ method: 'GET', url: `/api/v1/tools/${tool.id}/executions/${pending.execution_id}`, headers: analyst.headers });
    expect(view.json()).toMatchObject({ status: 'failed' });
  });

  it('refuses to run an approved call whose tool changed after the approval', async () => {
    const tool = await createTool(t, admin, gatedWebhook(sink, 'transfer_redefined'));
    const before = hookCalls();
    const pending = await requestGated('transfer_redefined', { amount: 3, to: 'z' });
    const changed = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${tool.id}`, headers: admin.headers, payload: { description: 'now different' } });
    expect(changed.statusCode).toBe(200);
    await decide(t, managers[0]!, pending.approval_id, 'APPROVED');
    const done = await waitForExecution(t, pending.execution_id);
    expect(done).toMatchObject({ status: 'failed' });
    expect(hookCalls()).toBe(before);
  });

  it('does not run an approved call for a requester deactivated in the meantime', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_leaver'));
    const leaver = await createUser(t, { role: 'ANALYST' });
    const before = hookCalls();
    const pending = await requestGated('transfer_leaver', { amount: 4, to: 'gone' }, leaver);
    const deactivated = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${leaver.user.id}`, headers: admin.headers, payload: { is_active: false } });
    expect(deactivated.statusCode, deactivated.body).toBe(200);
    await decide(t, managers[0]!, pending.approval_id, 'APPROVED');
    const done = await waitForExecution(t, pending.execution_id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/may no longer use/);
    expect(hookCalls()).toBe(before);
  });

  it('asks for approval when approval_when matches the arguments, and only then', async () => {
    await createTool(
      t,
      admin,
      gatedWebhook(sink, 'transfer_threshold', {
        requires_approval: false,
        approval_when: { type: 'object', required: ['amount'], properties: { amount: { type: 'number', exclusiveMinimum: 10000 } } },
      }),
    );
    const before = hookCalls();
    const small = await execute(t, analyst, 'transfer_threshold', { amount: 500, to: 'a' });
    expect(small.statusCode, small.body).toBe(200);
    expect(small.json()).toMatchObject({ status: 'completed', cached: false, result: { ok: true } });
    expect(hookCalls()).toBe(before + 1);

    const large = await execute(t, analyst, 'transfer_threshold', { amount: 20000, to: 'a' });
    expect(large.statusCode).toBe(202);
    expect(hookCalls()).toBe(before + 1);
  });

  it('never caches a gated call: each identical repeat needs (and runs on) its own approval', async () => {
    let runs = 0;
    sink.respond((call, response) => {
      if (call.path === '/hook') runs += 1;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ ok: true, run: runs }));
    });
    try {
      await createTool(t, admin, gatedWebhook(sink, 'transfer_cached', { cache_ttl_seconds: 3600 }));
      const first = await requestGated('transfer_cached', { amount: 5, to: 'same' });
      expect((await decide(t, managers[0]!, first.approval_id, 'APPROVED')).statusCode).toBe(200);
      expect((await waitForExecution(t, first.execution_id)).status).toBe('completed');
      const runsAfterFirst = runs;

      // The identical repeat is not answered from a cache: it waits for a new approval, then runs again.
      const repeat = await requestGated('transfer_cached', { amount: 5, to: 'same' });
      expect(repeat.approval_id).not.toBe(first.approval_id);
      expect(runs).toBe(runsAfterFirst);
      expect((await decide(t, managers[1]!, repeat.approval_id, 'APPROVED')).statusCode).toBe(200);
      expect((await waitForExecution(t, repeat.execution_id)).status).toBe('completed');
      expect(runs).toBe(runsAfterFirst + 1);

      // The call below the approval_when threshold of a partly gated tool may still be cached; the gated one never.
      await createTool(
        t,
        admin,
        gatedWebhook(sink, 'transfer_cached_threshold', {
          requires_approval: false,
          cache_ttl_seconds: 3600,
          approval_when: { type: 'object', required: ['amount'], properties: { amount: { type: 'number', exclusiveMinimum: 10000 } } },
        }),
      );
      expect((await execute(t, analyst, 'transfer_cached_threshold', { amount: 1, to: 'x' })).json()).toMatchObject({ cached: false });
      expect((await execute(t, analyst, 'transfer_cached_threshold', { amount: 1, to: 'x' })).json()).toMatchObject({ cached: true });
      const large = await requestGated('transfer_cached_threshold', { amount: 20000, to: 'x' });
      expect((await decide(t, managers[0]!, large.approval_id, 'APPROVED')).statusCode).toBe(200);
      expect((await waitForExecution(t, large.execution_id)).status).toBe('completed');
      expect((await execute(t, analyst, 'transfer_cached_threshold', { amount: 20000, to: 'x' })).statusCode).toBe(202);
    } finally {
      sink.respond((_call, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ ok: true }));
      });
    }
  });
});

describe('approval visibility and lists', () => {
  it('shows an approval to its requester and its deciders only; lists pending ones to approvers', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_visible'));
    const pending = await requestGated('transfer_visible', { amount: 1, to: 'v' });
    const other = await createUser(t, { role: 'ANALYST' });

    const url = `/api/v1/approvals/${pending.approval_id}`;
    expect((await t.app.inject({ method: 'GET', url, headers: analyst.headers })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url, headers: managers[2]!.headers })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url, headers: other.headers })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/approvals/not-a-uuid', headers: analyst.headers })).statusCode).toBe(422);

    const list = await t.app.inject({ method: 'GET', url: '/api/v1/approvals', headers: managers[2]!.headers });
    expect(list.statusCode).toBe(200);
    const items = list.json().items as { id: string; status: string; tool_args: Record<string, unknown> }[];
    expect(items.every((item) => item.status === 'PENDING')).toBe(true);
    expect(items.find((item) => item.id === pending.approval_id)?.tool_args).toEqual({ amount: 1, to: 'v' });

    expect((await t.app.inject({ method: 'GET', url: '/api/v1/approvals', headers: analyst.headers })).statusCode).toBe(403);
    const mine = await t.app.inject({ method: 'GET', url: '/api/v1/approvals/my-requests', headers: analyst.headers });
    expect((mine.json().items as { id: string }[]).some((item) => item.id === pending.approval_id)).toBe(true);
    const theirs = await t.app.inject({ method: 'GET', url: '/api/v1/approvals/my-requests', headers: other.headers });
    expect(theirs.json().items).toEqual([]);
  });

  it('pages approvals with a cursor', async () => {
    await createTool(t, admin, gatedWebhook(sink, 'transfer_paged'));
    const requester = await createUser(t, { role: 'ANALYST' });
    for (let i = 0; i < 3; i += 1) await requestGated('transfer_paged', { amount: i, to: 'p' }, requester);
    const first = await t.app.inject({ method: 'GET', url: '/api/v1/approvals/my-requests?limit=2', headers: requester.headers });
    expect(first.json().items).toHaveLength(2);
    const cursor = first.json().next_cursor as string;
    const second = await t.app.inject({ method: 'GET', url: `/api/v1/approvals/my-requests?limit=2&cursor=${cursor}`, headers: requester.headers });
    expect(second.json()).toMatchObject({ next_cursor: null });
    expect(second.json().items).toHaveLength(1);
  });
});

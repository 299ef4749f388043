import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/modules/auth/permissions.js';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, decide, execute, gatedWebhook, startSink, waitForExecution, type Sink } from './helpers.js';

describe.runIf(multiInstance)('approvals across two instances (PostgreSQL + Redis)', () => {
  let a: TestApp;
  let b: TestApp;
  let sink: Sink;
  let admin: TestUser;
  let analyst: TestUser;
  let managers: TestUser[];

  beforeAll(async () => {
    sink = await startSink();
    const env = { TOOL_HTTP_ALLOWLIST: sink.hostPort };
    a = await buildTestApp({ env });
    b = await buildTestApp({ share: a, env });
    admin = await createUser(a, { role: 'ADMIN' });
    analyst = await createUser(a, { role: 'ANALYST' });
    managers = [];
    for (let i = 0; i < 10; i += 1) managers.push(await createUser(a, { role: 'MANAGER' }));
    await createTool(a, admin, gatedWebhook(sink, 'transfer_multi'));
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await sink?.close();
  });

  const hookCalls = () => sink.calls.filter((call) => call.path === '/hook').length;

  it('requested on A, decided on B: the call runs once', async () => {
    const before = hookCalls();
    const requested = await execute(a, analyst, 'transfer_multi', { amount: 1, to: 'multi' });
    expect(requested.statusCode).toBe(202);
    const { approval_id, execution_id } = requested.json() as { approval_id: string; execution_id: string };
    expect((await decide(b, managers[0]!, approval_id, 'APPROVED')).statusCode).toBe(200);
    await waitForExecution(a, execution_id);
    await Promise.all([a.app.tools.engine.runApproved(approval_id), b.app.tools.engine.runApproved(approval_id)]);
    expect(hookCalls()).toBe(before + 1);
  });

  it('ten deciders racing on both instances: one final state, at most one execution', async () => {
    const before = hookCalls();
    const requested = await execute(a, analyst, 'transfer_multi', { amount: 2, to: 'race' });
    const { approval_id, execution_id } = requested.json() as { approval_id: string; execution_id: string };
    const responses = await Promise.all(managers.map((manager, i) => decide(i % 2 === 0 ? a : b, manager, approval_id, 'APPROVED')));
    expect(responses.filter((response) => response.statusCode === 200)).toHaveLength(1);
    expect(responses.filter((response) => response.statusCode === 409)).toHaveLength(9);
    await waitForExecution(b, execution_id);
    expect(hookCalls()).toBe(before + 1);
  });

  it('a chat continuation on both instances at once runs the approved call once', async () => {
    const actor: Actor = { userId: analyst.user.id, username: analyst.user.username, role: 'ANALYST', sessionId: randomUUID() };
    const context = { sessionId: randomUUID(), requestContext: { ipAddress: null, userAgent: null, requestId: null } };
    const outcome = await a.app.chatTools.executeFromChat(actor, { toolCallId: 'call_1', toolName: 'transfer_multi', args: { amount: 3, to: 'chat' } }, context);
    if (outcome.status !== 'pending_approval') throw new Error(`expected a pending approval, got ${outcome.status}`);
    await decide(b, managers[1]!, outcome.approval_id, 'APPROVED');
    const before = hookCalls();
    const results = await Promise.allSettled([a, b, a, b].map((instance) => instance.app.chatTools.resumeApproval(actor, outcome.approval_id, context)));
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    expect(hookCalls()).toBe(before + 1);
  });
});

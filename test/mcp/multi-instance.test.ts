import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { decide, execute, waitForExecution } from '../tools/helpers.js';
import { startCountingProxy, startEverythingHttp, type CountingProxy, type EverythingServer } from './helpers.js';

describe.runIf(multiInstance)('MCP tools across two instances (PostgreSQL + Redis)', () => {
  let everything: EverythingServer;
  let proxy: CountingProxy;
  let a: TestApp;
  let b: TestApp;
  let admin: TestUser;
  let manager: TestUser;
  let analyst: TestUser;

  beforeAll(async () => {
    everything = await startEverythingHttp();
    proxy = await startCountingProxy(everything.url);
    const env = { TOOL_HTTP_ALLOWLIST: proxy.hostPort };
    a = await buildTestApp({ env });
    b = await buildTestApp({ share: a, env });
    admin = await createUser(a, { role: 'ADMIN' });
    manager = await createUser(a, { role: 'MANAGER' });
    analyst = await createUser(a, { role: 'ANALYST' });
    const created = await a.app.inject({
      method: 'POST',
      url: '/api/v1/mcp/servers',
      headers: admin.headers,
      payload: { name: 'shared', transport: 'streamable_http', url: proxy.url },
    });
    expect(created.statusCode, created.body).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await proxy?.close();
    await everything?.stop();
  });

  it('discovered on A, requested on B, decided on A: the MCP call runs once, whichever instance tries', async () => {
    const pending = await execute(b, analyst, 'shared.get-sum', { a: 40, b: 2 });
    expect(pending.statusCode, pending.body).toBe(202);
    const { approval_id: approvalId, execution_id: executionId } = pending.json() as { approval_id: string; execution_id: string };
    expect(proxy.calls('get-sum')).toBe(0);
    expect((await decide(a, manager, approvalId, 'APPROVED')).statusCode).toBe(200);
    expect((await waitForExecution(b, executionId)).status).toBe('completed');
    await Promise.all([a.app.tools.engine.runApproved(approvalId), b.app.tools.engine.runApproved(approvalId)]);
    expect(proxy.calls('get-sum')).toBe(1);
  });
});

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockEnv } from '../chat/helpers.js';
import { createPostgresDatabase } from '../helpers/postgres.js';
import { startPostgresCluster, startRedisServer, type PostgresCluster, type RedisServer } from '../helpers/services.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { gatedWebhook, startSink, type Sink } from '../tools/helpers.js';
import {
  call,
  canRunFaultTests,
  createStaff,
  eventNames,
  login,
  postSse,
  registerClient,
  startService,
  stopAllServices,
  type Client,
  type Service,
} from './service.js';

const LEASE_SECONDS = 2;

/**
 * An instance dies (SIGKILL) while it runs an approved call for a chat: the other instance resolves the call as
 * interrupted within seconds of the lease running out, the requester is told, the chat continues on the other
 * instance with the model told the truth, and the call is never run again.
 */
describe.runIf(canRunFaultTests)('an instance dying during a gated call', { timeout: 120_000 }, () => {
  let cluster: PostgresCluster;
  let redis: RedisServer;
  let mock: MockLlm;
  let sink: Sink;
  let database: pg.Client;
  let a: Service;
  let b: Service;
  let admin: Client;
  let manager: Client;
  let analyst: Client;

  beforeAll(async () => {
    [cluster, redis, mock, sink] = await Promise.all([startPostgresCluster(), startRedisServer(), startMockLlm({ models: ['mock-model'] }), startSink()]);
    const databaseUrl = await createPostgresDatabase(cluster.url, 'cdsa_rel');
    const env = {
      ...mockEnv(mock.url, { OPENAI_LOCAL: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'rel-crash',
      INSTANCE_LEASE_SECONDS: String(LEASE_SECONDS),
    };
    const adminPassword = 'Admin-passphrase-for-tests-42';
    a = await startService({ ...env, CDSA_ADMIN_USERNAME: 'rel_admin', CDSA_ADMIN_EMAIL: 'rel_admin@example.test', CDSA_ADMIN_PASSWORD: adminPassword });
    b = await startService(env, a);
    database = new pg.Client({ connectionString: databaseUrl });
    await database.connect();
    const adminSession = await login(a.url, 'rel_admin', adminPassword);
    admin = { token: adminSession.access_token, userId: (adminSession.user as { id: string }).id, username: 'rel_admin', password: adminPassword };
    manager = await createStaff(a.url, admin.token, 'MANAGER');
    analyst = await registerClient(a.url);
    const tool = await call(a.url, 'POST', '/api/v1/tools', { token: admin.token, body: gatedWebhook(sink, 'transfer_crash') });
    expect(tool.status).toBe(201);
  });

  afterAll(async () => {
    await stopAllServices();
    await database?.end();
    await Promise.all([cluster?.destroy(), redis?.destroy(), mock?.close(), sink?.close()]);
  });

  const executionStatus = async (id: string): Promise<string | undefined> =>
    (await database.query<{ status: string }>('select status from tool_executions where id = $1', [id])).rows[0]?.status;

  it('resolves the call as interrupted within seconds, tells the requester, and the chat goes on elsewhere', async () => {
    mock.script(toolCallReply('transfer_crash', { amount: 5, to: 'acct-1' }));
    const proposed = await postSse(a.url, '/api/v1/chat/stream', { message: 'send 5 to acct-1' }, analyst.token);
    await proposed.ended;
    const gate = proposed.events.find((event) => event.event === 'approval_required')!.data as { approval_id: string };
    const sessionId = String(proposed.events[0]!.data.session_id);
    const decided = await call(b.url, 'POST', `/api/v1/approvals/${gate.approval_id}/decide`, { token: manager.token, body: { decision: 'APPROVED' } });
    expect(decided.status).toBe(200);
    const executionId = String(decided.body.execution_id);

    // The webhook takes the call and holds it; the instance running it dies meanwhile.
    sink.respond(() => new Promise(() => undefined));
    void postSse(a.url, '/api/v1/chat/continue', { session_id: sessionId, approval_id: gate.approval_id }, analyst.token).catch(() => undefined);
    await expect.poll(() => sink.calls.filter((c) => c.path === '/hook').length, { timeout: 15_000 }).toBe(1);
    expect(await executionStatus(executionId)).toBe('running');
    await a.kill();
    const died = performance.now();

    // While the lease may still be live, the outcome is unknown: the continuation is refused, to be retried.
    const early = await call(b.url, 'POST', '/api/v1/chat/continue', { token: analyst.token, body: { session_id: sessionId, approval_id: gate.approval_id } });
    if ((await executionStatus(executionId)) === 'running') {
      expect(early.status).toBe(409);
      expect(early.headers.get('retry-after')).toMatch(/^\d+$/);
    }

    await expect.poll(() => executionStatus(executionId), { timeout: 15_000, interval: 20 }).toBe('interrupted');
    const recoveryMs = performance.now() - died;
    // Bounded by the lease plus one heartbeat (a fifth of it), with room for a loaded machine.
    expect(recoveryMs).toBeLessThan(LEASE_SECONDS * 1000 * 3);
    console.info(`instance killed → its call resolved as interrupted: ${Math.round(recoveryMs)} ms (lease ${LEASE_SECONDS} s)`);

    // The requester sees it: the execution says so, and a notification tells them.
    const execution = await call(b.url, 'GET', `/api/v1/tools/transfer_crash/executions/${executionId}`, { token: analyst.token });
    expect(execution.body).toMatchObject({ status: 'interrupted' });
    expect(String(execution.body.error)).toContain('may or may not have taken effect');
    await expect
      .poll(async () => {
        const list = await call(b.url, 'GET', '/api/v1/notifications', { token: analyst.token });
        return (list.body.items as Array<{ title: string }>).map((n) => n.title);
      })
      .toContain('Tool run interrupted: transfer_crash');

    // The chat continues on the other instance; the model is told the call was interrupted.
    mock.script(textReply(['I could not confirm ', 'the transfer went through.']));
    const requestsBefore = mock.requests.length;
    const continued = await postSse(b.url, '/api/v1/chat/continue', { session_id: sessionId, approval_id: gate.approval_id }, analyst.token);
    await continued.ended;
    expect(continued.status).toBe(200);
    expect(eventNames(continued)).toEqual(expect.arrayContaining(['session', 'tool_result', 'token', 'message', 'done']));
    expect(continued.events.find((event) => event.event === 'tool_result')!.data).toMatchObject({ status: 'interrupted' });
    expect(continued.events.at(-1)).toMatchObject({ event: 'done', data: { status: 'completed' } });
    const toModel = JSON.stringify(mock.requests.slice(requestsBefore).map((request) => request.body));
    expect(toModel).toContain('interrupted');
    expect(toModel).toContain('may or may not have taken effect');

    // Continued once only, and the call itself never ran again.
    const again = await call(b.url, 'POST', '/api/v1/chat/continue', { token: analyst.token, body: { session_id: sessionId, approval_id: gate.approval_id } });
    expect(again.status).toBe(409);
    mock.script(textReply(['Anything else?']));
    const next = await postSse(b.url, '/api/v1/chat/stream', { message: 'thanks', session_id: sessionId }, analyst.token);
    await next.ended;
    expect(next.status).toBe(200);
    expect(next.events.at(-1)).toMatchObject({ event: 'done', data: { status: 'completed' } });
    expect(sink.calls.filter((c) => c.path === '/hook')).toHaveLength(1);
    expect(await executionStatus(executionId)).toBe('interrupted');
  });
});

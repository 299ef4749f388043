import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockEnv } from '../chat/helpers.js';
import { createPostgresDatabase } from '../helpers/postgres.js';
import { startPostgresCluster, startRedisServer, type PostgresCluster, type RedisServer } from '../helpers/services.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { gatedWebhook, startSink, type Sink } from '../tools/helpers.js';
import { call, canRunFaultTests, createStaff, eventNames, login, postSse, registerClient, startService, stopAllServices, type Service } from './service.js';

const GRACE_MS = 1_500;

/**
 * SIGTERM while one chat streams the model's answer and another's continuation waits on a tool call that outlasts the
 * grace period: both streams end with `done interrupted` (never a bare `shutdown`), what they did is stored as
 * interrupted, and the process exits 0 on its own, without its forced timer.
 */
describe.runIf(canRunFaultTests)('SIGTERM during chat turns', { timeout: 120_000 }, () => {
  let cluster: PostgresCluster;
  let redis: RedisServer;
  let mock: MockLlm;
  let sink: Sink;
  let database: pg.Client;
  let service: Service;

  beforeAll(async () => {
    [cluster, redis, mock, sink] = await Promise.all([startPostgresCluster(), startRedisServer(), startMockLlm({ models: ['mock-model'] }), startSink()]);
    const databaseUrl = await createPostgresDatabase(cluster.url, 'cdsa_rel');
    service = await startService({
      ...mockEnv(mock.url, { OPENAI_LOCAL: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'rel-shutdown',
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
      LOG_LEVEL: 'info',
      CDSA_ADMIN_USERNAME: 'rel_admin',
      CDSA_ADMIN_EMAIL: 'rel_admin@example.test',
      CDSA_ADMIN_PASSWORD: 'Admin-passphrase-for-tests-42',
    });
    database = new pg.Client({ connectionString: databaseUrl });
    await database.connect();
  });

  afterAll(async () => {
    await stopAllServices();
    await database?.end();
    await Promise.all([cluster?.destroy(), redis?.destroy(), mock?.close(), sink?.close()]);
  });

  it('ends every chat stream with done interrupted, stores what was done, and exits 0', async () => {
    const admin = (await login(service.url, 'rel_admin', 'Admin-passphrase-for-tests-42')).access_token;
    const manager = await createStaff(service.url, admin, 'MANAGER');
    const analyst = await registerClient(service.url);
    expect((await call(service.url, 'POST', '/api/v1/tools', { token: admin, body: gatedWebhook(sink, 'slow_transfer') })).status).toBe(201);

    // A gated call, approved; its webhook will answer only long after the grace period.
    mock.script(toolCallReply('slow_transfer', { amount: 7, to: 'acct-7' }));
    const proposed = await postSse(service.url, '/api/v1/chat/stream', { message: 'send 7' }, analyst.token);
    await proposed.ended;
    const approvalId = String(proposed.events.find((event) => event.event === 'approval_required')!.data.approval_id);
    const gatedSession = String(proposed.events[0]!.data.session_id);
    const decided = await call(service.url, 'POST', `/api/v1/approvals/${approvalId}/decide`, { token: manager.token, body: { decision: 'APPROVED' } });
    const executionId = String(decided.body.execution_id);
    sink.respond((_call, response) => {
      const timer = setTimeout(() => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"ok":true}');
      }, GRACE_MS * 4);
      response.on('close', () => clearTimeout(timer));
    });
    const continuation = postSse(service.url, '/api/v1/chat/continue', { session_id: gatedSession, approval_id: approvalId }, analyst.token);
    await expect.poll(() => sink.calls.filter((c) => c.path === '/hook').length, { timeout: 15_000 }).toBe(1);

    // Another chat in the middle of the model's answer.
    mock.script(textReply(Array.from({ length: 60 }, (_, i) => `word${i} `), { chunkDelayMs: 100 }));
    const answering = await postSse(service.url, '/api/v1/chat/stream', { message: 'tell me a long story' }, analyst.token);
    await answering.until((events) => events.some((event) => event.event === 'token'));
    const answeringSession = String(answering.events[0]!.data.session_id);

    const signalled = performance.now();
    service.child.kill('SIGTERM');

    await answering.ended;
    expect(answering.events.at(-1)).toEqual({ event: 'done', data: { status: 'interrupted' } });
    expect(eventNames(answering)).not.toContain('shutdown');

    // The continuation's stream opened after the shutdown began (its tool call was still running): it still ends
    // with done, after the tool's outcome, recorded as unknown, as the grace period ran out.
    const continued = await continuation;
    await continued.ended;
    expect(eventNames(continued)).toEqual(['session', 'tool_result', 'done']);
    expect(continued.events[1]!.data).toMatchObject({ status: 'interrupted' });
    expect(continued.events.at(-1)).toEqual({ event: 'done', data: { status: 'interrupted' } });

    expect(await service.exited).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(GRACE_MS + 5_000);
    expect(service.output()).not.toContain('graceful shutdown timed out');

    const rows = async (sessionId: string) =>
      (await database.query<{ role: string; status: string }>('select role, status from chat_messages where session_id = $1 order by seq', [sessionId])).rows;
    expect((await rows(answeringSession)).map((row) => `${row.role}:${row.status}`)).toEqual(['user:completed', 'assistant:interrupted']);
    expect((await rows(gatedSession)).map((row) => `${row.role}:${row.status}`)).toEqual(['user:completed', 'assistant:completed', 'tool:completed']);
    const execution = await database.query<{ status: string; error: string }>('select status, error from tool_executions where id = $1', [executionId]);
    expect(execution.rows[0]).toMatchObject({ status: 'interrupted' });
    expect(execution.rows[0]!.error).toContain('shut down');
  });
});

/**
 * Recovery times, measured on private servers this script starts and breaks (its own PostgreSQL cluster and
 * redis-server, like test/reliability):
 *
 *   1. database back → first successful request, after `pg_ctl restart -m fast` and after `stop -m immediate` + start,
 *      against the ceiling: a brand-new connection's first query at the same moment (nothing can answer sooner).
 *   2. instance killed (SIGKILL) during an approved chat call → the call resolved as `interrupted` by the other
 *      instance, against the lease (INSTANCE_LEASE_SECONDS), which is the floor by design.
 *
 *   npx tsx bench/reliability.bench.ts
 *
 * BENCH_ROUNDS (default 5) restarts of each kind; BENCH_KILLS (default 3) instance kills; BENCH_LEASE_SECONDS
 * (default 10, the service default) the lease the instances run with.
 */
import pg from 'pg';
import { mockEnv } from '../test/chat/helpers.js';
import { createPostgresDatabase } from '../test/helpers/postgres.js';
import { startPostgresCluster, startRedisServer } from '../test/helpers/services.js';
import { startMockLlm, toolCallReply } from '../test/mock-llm/server.js';
import { call, createStaff, login, postSse, registerClient, startService, stopAllServices, type Client } from '../test/reliability/service.js';
import { gatedWebhook, startSink } from '../test/tools/helpers.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const KILLS = Number(process.env.BENCH_KILLS ?? 3);
const LEASE_SECONDS = Number(process.env.BENCH_LEASE_SECONDS ?? 10);

const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const fmt = (values: number[]): string => `median ${Math.round(median(values))} ms (min ${Math.round(Math.min(...values))}, max ${Math.round(Math.max(...values))})`;

async function until(probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  const started = performance.now();
  while (!(await probe().catch(() => false))) {
    if (performance.now() - started > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - started;
}

async function main(): Promise<void> {
  const [cluster, redis, mock, sink] = await Promise.all([startPostgresCluster(), startRedisServer(), startMockLlm({ models: ['mock-model'] }), startSink()]);
  try {
    const databaseUrl = await createPostgresDatabase(cluster.url, 'cdsa_bench');
    const env = {
      ...mockEnv(mock.url, { OPENAI_LOCAL: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'bench-rel',
      INSTANCE_LEASE_SECONDS: String(LEASE_SECONDS),
    };
    const adminPassword = 'Admin-passphrase-for-bench-42';
    let a = await startService({ ...env, CDSA_ADMIN_USERNAME: 'bench_admin', CDSA_ADMIN_EMAIL: 'bench_admin@example.test', CDSA_ADMIN_PASSWORD: adminPassword });
    const b = await startService(env, a);
    const admin = (await login(b.url, 'bench_admin', adminPassword)).access_token;
    const manager = await createStaff(b.url, admin, 'MANAGER');
    const analyst = await registerClient(b.url);
    await call(b.url, 'POST', '/api/v1/tools', { token: admin, body: gatedWebhook(sink, 'bench_transfer') });

    // 1. The database comes back.
    const served = (client: Client) => async () => (await call(b.url, 'GET', '/api/v1/chat/sessions', { token: client.token })).status === 200;
    const freshConnection = async () => {
      const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 1_000 });
      try {
        await probe.connect();
        await probe.query('select 1');
        return true;
      } finally {
        await probe.end().catch(() => undefined);
      }
    };
    const restart = { service: [] as number[], ceiling: [] as number[] };
    const outage = { service: [] as number[], ceiling: [] as number[] };
    for (let round = 0; round < ROUNDS; round += 1) {
      await cluster.restart();
      const [service, ceiling] = await Promise.all([until(served(analyst)), until(freshConnection)]);
      restart.service.push(service);
      restart.ceiling.push(ceiling);
      await cluster.stop();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await cluster.start();
      const [serviceAfter, ceilingAfter] = await Promise.all([until(served(analyst)), until(freshConnection)]);
      outage.service.push(serviceAfter);
      outage.ceiling.push(ceilingAfter);
    }

    // 2. An instance dies mid-call.
    const database = new pg.Client({ connectionString: databaseUrl });
    await database.connect();
    const recovery: number[] = [];
    sink.respond(() => new Promise(() => undefined));
    for (let kill = 0; kill < KILLS; kill += 1) {
      if (kill > 0) a = await startService(env, b);
      mock.script(toolCallReply('bench_transfer', { amount: kill + 1, to: 'acct' }));
      const proposed = await postSse(a.url, '/api/v1/chat/stream', { message: 'transfer' }, analyst.token);
      await proposed.ended;
      const approvalId = String(proposed.events.find((event) => event.event === 'approval_required')!.data.approval_id);
      const sessionId = String(proposed.events[0]!.data.session_id);
      const decided = await call(b.url, 'POST', `/api/v1/approvals/${approvalId}/decide`, { token: manager.token, body: { decision: 'APPROVED' } });
      const executionId = String(decided.body.execution_id);
      const held = sink.calls.length;
      void postSse(a.url, '/api/v1/chat/continue', { session_id: sessionId, approval_id: approvalId }, analyst.token).catch(() => undefined);
      await until(async () => sink.calls.length > held);
      await a.kill();
      recovery.push(
        await until(async () => (await database.query<{ status: string }>('select status from tool_executions where id = $1', [executionId])).rows[0]?.status === 'interrupted'),
      );
    }
    await database.end();

    console.log(`PostgreSQL restart (-m fast), ${ROUNDS} rounds: first successful request ${fmt(restart.service)}; a new connection's first query ${fmt(restart.ceiling)}`);
    console.log(`PostgreSQL outage (stop -m immediate, start), ${ROUNDS} rounds: first successful request ${fmt(outage.service)}; a new connection's first query ${fmt(outage.ceiling)}`);
    console.log(
      `instance killed mid-call, ${KILLS} kills, lease ${LEASE_SECONDS} s: resolved as interrupted after ${fmt(recovery)} (${(median(recovery) / (LEASE_SECONDS * 1000)).toFixed(2)}x the lease)`,
    );
  } finally {
    await stopAllServices();
    await Promise.all([cluster.destroy(), redis.destroy(), mock.close(), sink.close()]);
  }
}

await main();

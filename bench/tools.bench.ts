/**
 * The tool engine's cost and the approval chain's latency.
 *
 * 1. Engine overhead: a no-op built-in run through the whole pipeline (tool lookup, role check, argument validation,
 *    approval gate, execution row with encrypted arguments and result, TOOL_CALL_INITIATED + TOOL_CALL_COMPLETED audit
 *    events in the hash chain) vs calling the same function directly, in the same run (target: engine < 2 ms p50).
 *    Measured for a pure built-in (recorded once, after the run) and for one with side effects (on record before it
 *    runs, then its outcome: two transactions); also through HTTP (`POST /api/v1/tools/noop/execute`, app.inject).
 * 2. Decision → execution: `POST /approvals/{id}/decide` on instance B → the approved call starts running (job).
 * 3. Decision → continuation first token: decide on B, then `POST /chat/continue` on B until its first `token` event
 *    (mock LLM, one-chunk answer) — what a user waits for after an approver clicks (target p99 < 200 ms).
 *
 * With DATABASE_URL and REDIS_URL set, instance B is a second app on the same database and Redis (BullMQ jobs);
 * otherwise both are one embedded instance.
 *
 *   npx tsx bench/tools.bench.ts [executions=2000] [rounds=40]
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { Actor } from '../src/modules/auth/permissions.js';
import type { BuiltinRunContext, BuiltinTool } from '../src/modules/tools/index.js';
import { withTransaction } from '../src/db/unit-of-work.js';
import { createAllowlist } from '../src/modules/tools/egress.js';
import { createToolsRepository } from '../src/modules/tools/tools.repository.js';
import { percentile } from './lib/http-load.js';
import { buildTestApp, multiInstance, type TestApp } from '../test/helpers/app.js';
import { createUser, type TestUser } from '../test/helpers/users.js';
import { startMockLlm, textReply, toolCallReply } from '../test/mock-llm/server.js';

const EXECUTIONS = Number(process.argv[2] ?? 2_000);
const ROUNDS = Number(process.argv[3] ?? 40);
const WARMUP = 200;

/** Resolvers waiting for the next run of the gated no-op (decision → execution). */
const runWaiters: Array<(at: number) => void> = [];

function noopTool(name: string, requiresApproval: boolean, pure: boolean): BuiltinTool {
  return {
    pure,
    name,
    description: 'Does nothing (benchmark)',
    inputSchema: { type: 'object', additionalProperties: false, properties: { n: { type: 'integer' } } },
    outputSchema: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } },
    requiresApproval,
    options: [],
    seed: true,
    async run() {
      const at = performance.now();
      runWaiters.shift()?.(at);
      return { ok: true };
    },
  };
}

/** Declared pure: recorded once, after it ran (one transaction, one audit append of two events). */
const noop = noopTool('noop', false, true);
/** Treated as having side effects: on record before it runs, then its outcome (two transactions). */
const noopEffect = noopTool('noop_effect', false, false);
const noopGated = noopTool('noop_gated', true, false);

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const pct = (values: number[], p: number) => percentile(sorted(values), p);
const us = (ms: number) => `${(ms * 1000).toFixed(1).padStart(9)} µs`;
const ms = (value: number) => `${value.toFixed(2).padStart(8)} ms`;

function register(app: FastifyInstance): void {
  app.tools.registerBuiltin(noop);
  app.tools.registerBuiltin(noopEffect);
  app.tools.registerBuiltin(noopGated);
}

function firstToken(app: FastifyInstance, path: string, headers: Record<string, string>, body: unknown): Promise<{ firstTokenAt: number | null; status: number }> {
  const { port } = app.server.address() as { port: number };
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let firstTokenAt: number | null = null;
    const request = http.request(
      `http://127.0.0.1:${port}${path}`,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
      (response) => {
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          buffer += chunk;
          if (firstTokenAt === null && buffer.includes('event: token')) firstTokenAt = performance.now();
        });
        response.on('end', () => resolve({ firstTokenAt, status: response.statusCode ?? 0 }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

async function engineOverhead(a: TestApp, analyst: TestUser): Promise<void> {
  const actor: Actor = { userId: analyst.user.id, username: analyst.user.username, role: 'ANALYST', sessionId: randomUUID() };
  const context = { ipAddress: '127.0.0.1', userAgent: 'bench', requestId: null };
  const runContext: BuiltinRunContext = {
    executionId: randomUUID(),
    userId: actor.userId,
    approvalId: null,
    toolName: 'noop',
    implementation: { type: 'builtin', builtin: 'noop' },
    signal: new AbortController().signal,
    allowlist: createAllowlist([]),
    useSecret: async () => '',
    outputSchema: null,
  };
  const repository = createToolsRepository();
  const noopRow = await a.app.tools.registry.requireLive({ name: 'noop' });
  /** The write every recorded execution needs, and nothing else: one execution row and two audit events, one commit. */
  const floorWrite = async (n: number) => {
    const id = randomUUID();
    await withTransaction(a.app.infra.database.db, async (uow) => {
      await repository.insertExecution(uow.tx, {
        id,
        toolId: noopRow.id,
        toolName: 'noop',
        toolVersion: noopRow.version,
        userId: actor.userId,
        status: 'completed',
        source: 'api',
        encryptedArgs: a.app.fieldCipher.encrypt(JSON.stringify({ n }), `tool_executions:${id}:args`),
        argsDigest: 'bench',
        encryptedResult: a.app.fieldCipher.encrypt('{"ok":true}', `tool_executions:${id}:result`),
      });
      await a.app.audit.recordMany(uow.tx, [
        { eventType: 'TOOL_CALL_INITIATED', userId: actor.userId, resourceType: 'tool_execution', resourceId: id, details: { tool_name: 'noop' } },
        { eventType: 'TOOL_CALL_COMPLETED', userId: actor.userId, resourceType: 'tool_execution', resourceId: id, details: { tool_name: 'noop' } },
      ]);
    });
  };
  const floor: number[] = [];
  const direct: number[] = [];
  const engine: number[] = [];
  const engineEffect: number[] = [];
  const viaHttp: number[] = [];
  for (let i = 0; i < WARMUP + EXECUTIONS; i += 1) {
    const args = { n: i };
    let started = performance.now();
    await noop.run(args, runContext);
    const directMs = performance.now() - started;

    started = performance.now();
    await floorWrite(i);
    const floorMs = performance.now() - started;

    started = performance.now();
    const outcome = await a.app.tools.engine.execute(actor, { idOrName: 'noop' }, args, context);
    const engineMs = performance.now() - started;
    if (outcome.status !== 'completed') throw new Error('the no-op did not complete');

    started = performance.now();
    await a.app.tools.engine.execute(actor, { idOrName: 'noop_effect' }, args, context);
    const effectMs = performance.now() - started;

    started = performance.now();
    const response = await a.app.inject({ method: 'POST', url: '/api/v1/tools/noop/execute', headers: analyst.headers, payload: { args } });
    const httpMs = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`HTTP execute answered ${response.statusCode}: ${response.body}`);

    if (i < WARMUP) continue;
    direct.push(directMs);
    floor.push(floorMs);
    engine.push(engineMs);
    engineEffect.push(effectMs);
    viaHttp.push(httpMs);
  }
  console.log(`\n1. No-op built-in, ${EXECUTIONS} executions each (after ${WARMUP} warm-up), interleaved`);
  console.log(`                                      p50          p99`);
  console.log(`   direct function call           ${us(pct(direct, 50))} ${us(pct(direct, 99))}`);
  console.log(`   record only (row + 2 audit)    ${us(pct(floor, 50))} ${us(pct(floor, 99))}   (the database write any recorded call needs)`);
  console.log(`   engine, pure built-in          ${us(pct(engine, 50))} ${us(pct(engine, 99))}   overhead p50 ${us(pct(engine, 50) - pct(direct, 50))}, of which beyond the record ${us(pct(engine, 50) - pct(floor, 50))}`);
  console.log(`   engine, with side effects      ${us(pct(engineEffect, 50))} ${us(pct(engineEffect, 99))}   (recorded before and after the run)`);
  console.log(`   HTTP execute, pure (inject)    ${us(pct(viaHttp, 50))} ${us(pct(viaHttp, 99))}`);
  const verdict = pct(engine, 50) < 2 ? 'meets' : 'MISSES';
  console.log(`   engine p50 (pure) ${ms(pct(engine, 50))} ${verdict} the < 2 ms target`);
}

async function decisionToExecution(a: TestApp, b: TestApp, analyst: TestUser, manager: TestUser): Promise<void> {
  const latencies: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const requested = await a.app.inject({ method: 'POST', url: '/api/v1/tools/noop_gated/execute', headers: analyst.headers, payload: { args: { n: i } } });
    if (requested.statusCode !== 202) throw new Error(`expected 202, got ${requested.statusCode}`);
    const { approval_id } = requested.json() as { approval_id: string };
    const ran = new Promise<number>((resolve) => runWaiters.push(resolve));
    const started = performance.now();
    const decided = await b.app.inject({ method: 'POST', url: `/api/v1/approvals/${approval_id}/decide`, headers: manager.headers, payload: { decision: 'APPROVED' } });
    if (decided.statusCode !== 200) throw new Error(`decide answered ${decided.statusCode}`);
    latencies.push((await ran) - started);
  }
  console.log(`\n2. Decision → execution starts (${ROUNDS} rounds; decided on ${a === b ? 'the same instance' : 'instance B'})`);
  console.log(`   p50 ${ms(pct(latencies, 50))}   p99 ${ms(pct(latencies, 99))}   max ${ms(Math.max(...latencies))}`);
}

async function decisionToFirstToken(a: TestApp, b: TestApp, mockUrl: string, manager: TestUser, user: TestUser, mock: Awaited<ReturnType<typeof startMockLlm>>): Promise<void> {
  const latencies: number[] = [];
  const continueOnly: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    mock.script(toolCallReply('noop_gated', { n: i }, { id: `call_${i}` }), textReply(['done']));
    let sessionId = '';
    let approvalId = '';
    const { port } = a.app.server.address() as { port: number };
    await new Promise<void>((resolve, reject) => {
      const payload = JSON.stringify({ message: `run ${i}` });
      const request = http.request(
        `http://127.0.0.1:${port}/api/v1/chat/stream`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...user.headers } },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            sessionId = /"session_id":"([^"]+)"/.exec(body)?.[1] ?? '';
            approvalId = /"approval_id":"([^"]+)"/.exec(body)?.[1] ?? '';
            resolve();
          });
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
    if (!approvalId) throw new Error('the chat did not stop at the approval gate');
    const started = performance.now();
    const decided = await b.app.inject({ method: 'POST', url: `/api/v1/approvals/${approvalId}/decide`, headers: manager.headers, payload: { decision: 'APPROVED' } });
    if (decided.statusCode !== 200) throw new Error(`decide answered ${decided.statusCode}`);
    const continueStarted = performance.now();
    const { firstTokenAt, status } = await firstToken(b.app, '/api/v1/chat/continue', user.headers, { session_id: sessionId, approval_id: approvalId });
    if (status !== 200 || firstTokenAt === null) throw new Error(`continue answered ${status} without a token`);
    latencies.push(firstTokenAt - started);
    continueOnly.push(firstTokenAt - continueStarted);
  }
  console.log(`\n3. Decision → first token of the continuation (${ROUNDS} rounds; mock LLM at ${mockUrl})`);
  console.log(`   decide + continue    p50 ${ms(pct(latencies, 50))}   p99 ${ms(pct(latencies, 99))}`);
  console.log(`   continue alone       p50 ${ms(pct(continueOnly, 50))}   p99 ${ms(pct(continueOnly, 99))}`);
  const verdict = pct(latencies, 99) < 200 ? 'meets' : 'MISSES';
  console.log(`   p99 ${verdict} the < 200 ms target`);
}

async function main(): Promise<void> {
  const mock = await startMockLlm({ models: ['mock-model'] });
  const env = {
    OPENAI_BASE_URL: `${mock.url}/v1`,
    OPENAI_API_KEY: 'sk-bench-0123456789abcdef',
    OPENAI_LOCAL: 'true',
    OLLAMA_BASE_URL: '',
    LLM_DEFAULT_MODEL: 'openai/mock-model',
    CHAT_RATE_LIMIT_REQUESTS: '10000000',
  };
  const a = await buildTestApp({ env, beforeReady: register });
  const b = multiInstance ? await buildTestApp({ env, share: a, beforeReady: register }) : a;
  const startedAll = performance.now();
  try {
    await a.app.listen({ port: 0, host: '127.0.0.1' });
    if (b !== a) await b.app.listen({ port: 0, host: '127.0.0.1' });
    const analyst = await createUser(a, { role: 'ANALYST' });
    const manager = await createUser(a, { role: 'MANAGER' });
    console.log(`Tool engine benchmark — ${a.app.infra.database.kind} database, ${a.app.infra.jobs.kind} jobs, ${b === a ? 'one instance' : 'two instances'}`);
    await engineOverhead(a, analyst);
    await decisionToExecution(a, b, analyst, manager);
    await decisionToFirstToken(a, b, mock.url, manager, analyst, mock);
    console.log(`\n(total ${((performance.now() - startedAll) / 1000).toFixed(1)} s)`);
  } finally {
    if (b !== a) await b.close();
    await a.close();
    await mock.close();
  }
}

await main();

/**
 * Notification fan-out benchmark: N concurrent SSE connections (default 5,000) on one instance, one broadcast to all
 * of them; the time until each client has it (p50/p99/max) and the memory each held stream costs, next to a bare
 * node:http SSE broadcaster measured the same way in the same run (targets: p99 within 2x of the bare one, < 250 ms).
 * With DATABASE_URL and REDIS_URL set, also the cross-instance hop: the same streams held on instance B, the broadcast
 * made on instance A, against the broadcast made on B itself (target: < 20 ms added at p99).
 *
 * The embedded database lives in a temporary data directory on disk, as `npm start` keeps it.
 *
 * Run:  ulimit -n 20000 && npx tsx bench/notifications.bench.ts
 *       (each connection is two file descriptors in this process: the client's and the server's)
 * Env:  BENCH_CONNECTIONS (5000), BENCH_PHASES (3), BENCH_ROUNDS (3 per phase)
 *
 * The clients run in a worker thread, so reading 5,000 streams does not steal the server's event loop. Authentication
 * is not what is measured: users are inserted in bulk and an authenticator maps a header to them (a real login per
 * user would spend minutes in password hashing).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { queryRows } from '../src/db/client.js';
import { loadTokenizer } from '../src/modules/chat/chat.tokens.js';
import type { Actor } from '../src/modules/auth/permissions.js';
import { buildTestApp, multiInstance, type TestApp } from '../test/helpers/app.js';
import { eventually } from '../test/helpers/eventually.js';
import { percentile } from './lib/http-load.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 5_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PHASES = Number(process.env.BENCH_PHASES ?? 3);
const BENCH_USER_HEADER = 'x-bench-user';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** The clients: plain JavaScript evaluated in a worker thread. Timestamps are absolute (timeOrigin + now). */
const CLIENT_SOURCE = `
const http = require('node:http');
const { parentPort } = require('node:worker_threads');
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let clients = [];
let marker = null;
let times = null;
let pending = 0;
const now = () => performance.timeOrigin + performance.now();
function arm(message) {
  marker = message.marker;
  times = new Float64Array(clients.length);
  pending = clients.length;
  const timer = setTimeout(() => {
    if (marker === null) return;
    marker = null;
    parentPort.postMessage({ type: 'received', times, missing: pending });
  }, message.timeoutMs);
  clients.forEach((client) => { client.done = false; });
  armed = () => { clearTimeout(timer); marker = null; parentPort.postMessage({ type: 'received', times, missing: 0 }); };
}
let armed = () => {};
function connectOne(url, userId, index) {
  return new Promise((resolve) => {
    const client = { done: false, request: null };
    const request = http.get(url, { agent, headers: { accept: 'text/event-stream', '${BENCH_USER_HEADER}': userId } }, (response) => {
      if (response.statusCode !== 200) { response.resume(); resolve(null); return; }
      response.setEncoding('utf8');
      let seenConnected = false;
      response.on('data', (chunk) => {
        if (!seenConnected && chunk.includes('event: connected')) { seenConnected = true; resolve(client); }
        if (marker !== null && !client.done && chunk.includes(marker)) {
          client.done = true;
          times[index] = now();
          pending -= 1;
          if (pending === 0) armed();
        }
      });
      response.on('error', () => undefined);
    });
    request.on('error', () => resolve(null));
    client.request = request;
  });
}
parentPort.on('message', async (message) => {
  if (message.cmd === 'connect') {
    clients = [];
    let failures = 0;
    for (let start = 0; start < message.userIds.length; start += 250) {
      const batch = message.userIds.slice(start, start + 250);
      const opened = await Promise.all(batch.map((userId, offset) => connectOne(message.url, userId, start + offset)));
      for (const client of opened) { if (client) clients.push(client); else failures += 1; }
    }
    parentPort.postMessage({ type: 'connected', count: clients.length, failures });
  } else if (message.cmd === 'expect') {
    arm(message);
    parentPort.postMessage({ type: 'armed' });
  } else if (message.cmd === 'close') {
    for (const client of clients) client.request.destroy();
    clients = [];
    agent.destroy();
    parentPort.postMessage({ type: 'closed' });
  }
});
`;

interface ClientMessage {
  type: 'connected' | 'armed' | 'received' | 'closed';
  count?: number;
  failures?: number;
  times?: Float64Array;
  missing?: number;
}

class Clients {
  private readonly worker = new Worker(CLIENT_SOURCE, { eval: true });

  private next(type: ClientMessage['type']): Promise<ClientMessage> {
    return new Promise((resolve) => {
      const listener = (message: ClientMessage) => {
        if (message.type !== type) return;
        this.worker.off('message', listener);
        resolve(message);
      };
      this.worker.on('message', listener);
    });
  }

  async connect(url: string, userIds: string[]): Promise<number> {
    const done = this.next('connected');
    this.worker.postMessage({ cmd: 'connect', url, userIds });
    const result = await done;
    if (result.failures) {
      console.error(`${result.failures} connections failed (raise the file limit: ulimit -n 20000)`);
    }
    return result.count ?? 0;
  }

  /** Arms the clients for `marker`, runs `trigger`, and returns each client's receive time. */
  async measure(marker: string, trigger: () => Promise<void>): Promise<{ times: Float64Array; missing: number }> {
    const armed = this.next('armed');
    this.worker.postMessage({ cmd: 'expect', marker, timeoutMs: 30_000 });
    await armed;
    const received = this.next('received');
    await trigger();
    const result = await received;
    return { times: result.times!, missing: result.missing ?? 0 };
  }

  async close(): Promise<void> {
    const closed = this.next('closed');
    this.worker.postMessage({ cmd: 'close' });
    await closed;
    await this.worker.terminate();
  }
}

const absoluteNow = () => performance.timeOrigin + performance.now();

interface RoundResult {
  p50: number;
  p99: number;
  max: number;
  missing: number;
  /** From the wake-up publish (after the rows committed) to each client, when measured. */
  fanoutP99?: number;
  persistMs?: number;
  /** Time the server spent writing the event to every local stream (synchronous fan-out). */
  serverWriteMs?: number;
}

function summarize(times: Float64Array, since: number, missing: number): RoundResult {
  const latencies = Array.from(times)
    .filter((time) => time > 0)
    .map((time) => time - since)
    .sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? Number.NaN, missing };
}

function median(rounds: RoundResult[], key: 'p50' | 'p99' | 'max' | 'fanoutP99' | 'persistMs' | 'serverWriteMs'): number {
  const values = rounds.map((round) => round[key] ?? Number.NaN).sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)]!;
}

function heapAndRss(): { heap: number; rss: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

function report(name: string, rounds: RoundResult[], memory?: Memory): void {
  const line = [
    name.padEnd(40),
    `p50 ${fmt(median(rounds, 'p50')).padStart(9)}`,
    `p99 ${fmt(median(rounds, 'p99')).padStart(9)}`,
    `last ${fmt(median(rounds, 'max')).padStart(9)}`,
  ];
  if (rounds[0]?.persistMs !== undefined) line.push(`(persist ${fmt(median(rounds, 'persistMs'))}, fan-out p99 ${fmt(median(rounds, 'fanoutP99'))})`);
  if (rounds[0]?.serverWriteMs !== undefined) line.push(`server writes ${fmt(median(rounds, 'serverWriteMs'))}`);
  if (memory) line.push(`mem/conn heap ${(memory.heapPerConn / 1024).toFixed(1)} KiB, rss ${(memory.rssPerConn / 1024).toFixed(1)} KiB`);
  const missing = rounds.reduce((sum, round) => sum + round.missing, 0);
  if (missing > 0) line.push(`MISSING ${missing}`);
  console.log(line.join('  '));
}

type Memory = { heapPerConn: number; rssPerConn: number };

interface Contender {
  /** One phase: connect every client, measure memory (when asked), broadcast 1 + ROUNDS times, disconnect. */
  phase(measureMemory: boolean): Promise<{ rounds: RoundResult[]; memory?: Memory }>;
  close(): Promise<void>;
}

/** Connects a fresh set of clients, with the heap and RSS they cost the process when asked. */
async function connectMeasured(url: string, userIds: string[], measureMemory: boolean): Promise<{ clients: Clients; memory?: Memory }> {
  const clients = new Clients();
  const before = measureMemory ? heapAndRss() : undefined;
  const count = await clients.connect(url, userIds);
  if (count < userIds.length) console.error(`only ${count} of ${userIds.length} streams opened`);
  if (!before) return { clients };
  const after = heapAndRss();
  return { clients, memory: { heapPerConn: (after.heap - before.heap) / count, rssPerConn: (after.rss - before.rss) / count } };
}

/** The baseline: a hand-written node:http SSE broadcaster with the same event shape and per-client JSON. */
async function startBare(): Promise<Contender> {
  const streams: http.ServerResponse[] = [];
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write('retry: 3000\n\n');
    response.write(`event: connected\ndata: ${JSON.stringify({ connection_id: randomUUID() })}\n\n`);
    streams.push(response);
    request.on('close', () => streams.splice(streams.indexOf(response), 1));
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let phases = 0;
  return {
    async phase(measureMemory) {
      phases += 1;
      const userIds = Array.from({ length: CONNECTIONS }, () => randomUUID());
      const { clients, memory } = await connectMeasured(`http://127.0.0.1:${port}/stream`, userIds, measureMemory);
      const rounds: RoundResult[] = [];
      for (let round = 1; round <= ROUNDS + 1; round += 1) {
        const marker = `bench-bare-${phases}-${round}-${randomUUID()}`;
        let started = 0;
        let writeMs = 0;
        const { times, missing } = await clients.measure(marker, async () => {
          started = absoluteNow();
          const createdAt = new Date().toISOString();
          for (const response of streams) {
            const body = {
              id: randomUUID(),
              seq: round,
              type: 'SYSTEM_MAINTENANCE',
              title: marker,
              message: 'Maintenance tonight',
              data: {},
              priority: 'normal',
              is_read: false,
              read_at: null,
              expires_at: null,
              created_at: createdAt,
            };
            response.write(`id: ${round}\nevent: notification\ndata: ${JSON.stringify(body)}\n\n`);
          }
          writeMs = absoluteNow() - started;
        });
        // The first round warms up (JIT, socket buffers) and is not counted.
        if (round > 1) rounds.push({ ...summarize(times, started, missing), serverWriteMs: writeMs });
      }
      await clients.close();
      await eventually(() => streams.length === 0, 30_000);
      return { rounds, memory };
    },
    async close() {
      for (const response of streams.splice(0)) response.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Bulk users (no password hashing) and an authenticator that maps the bench header to them. */
async function prepareUsers(t: TestApp, count: number): Promise<{ userIds: string[]; admin: Actor }> {
  const rows = await queryRows<{ id: string }>(
    t.app.infra.database.db,
    sql`INSERT INTO users (username, email, password_hash, role)
        SELECT 'bench_' || g, 'bench_' || g || '@example.test', 'not-a-hash', 'ANALYST' FROM generate_series(1, ${count}::int) g
        RETURNING id`,
  );
  const userIds = rows.map((row) => row.id);
  const admin: Actor = { userId: userIds[0]!, username: 'bench_1', role: 'ADMIN', sessionId: randomUUID() };
  return { userIds, admin };
}

function benchAuthenticator(app: FastifyInstance, userIds: string[]): void {
  const known = new Set(userIds);
  app.identity.authenticate = async (request) => {
    const userId = String(request.headers[BENCH_USER_HEADER] ?? '');
    if (!known.has(userId)) throw new Error('unknown bench user');
    return { userId, username: `bench:${userId}`, role: 'ANALYST', sessionId: userId };
  };
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1/notifications/stream`;
}

/** Records when the first fan-out wake-up leaves the broadcasting instance (after the rows committed). */
function tapPublish(app: FastifyInstance): { since(): number; writeMs(): number; reset(): void } {
  const pubsub = app.infra.pubsub;
  const original = pubsub.publish.bind(pubsub);
  let first = 0;
  let writing = 0;
  pubsub.publish = (channel, message) => {
    const started = absoluteNow();
    if (first === 0) first = started;
    // Local subscribers run synchronously inside publish: this is the server's write loop.
    const result = original(channel, message);
    writing += absoluteNow() - started;
    return result;
  };
  return {
    since: () => first,
    writeMs: () => writing,
    reset: () => {
      first = 0;
      writing = 0;
    },
  };
}

async function broadcastRounds(
  clients: Clients,
  label: string,
  broadcaster: FastifyInstance,
  admin: Actor,
  tap: { since(): number; writeMs(): number; reset(): void },
): Promise<RoundResult[]> {
  const rounds: RoundResult[] = [];
  for (let round = 1; round <= ROUNDS + 1; round += 1) {
    const marker = `bench-${label}-${round}-${randomUUID()}`;
    let started = 0;
    let persisted = 0;
    tap.reset();
    const { times, missing } = await clients.measure(marker, async () => {
      started = absoluteNow();
      const result = await broadcaster.notifications.broadcast(admin, { type: 'SYSTEM_MAINTENANCE', title: marker, message: 'Maintenance tonight' });
      persisted = absoluteNow();
      if (result.recipients < CONNECTIONS) throw new Error(`broadcast reached ${result.recipients} users`);
    });
    const summary = summarize(times, started, missing);
    const published = tap.since();
    if (published > 0) {
      summary.fanoutP99 = summarize(times, published, 0).p99;
      summary.persistMs = published - started;
      summary.serverWriteMs = tap.writeMs();
    } else {
      summary.persistMs = persisted - started;
    }
    if (round > 1) rounds.push(summary);
  }
  return rounds;
}

async function startCdsa(): Promise<Contender> {
  // The embedded database in a data directory on disk, as `npm start` keeps it (not the tests' in-memory one).
  const dataDir = process.env.DATABASE_URL ? undefined : await mkdtemp(path.join(os.tmpdir(), 'cdsa-bench-'));
  const t = await buildTestApp({ env: { LOG_LEVEL: 'error' }, processJobs: false, embeddedDir: dataDir });
  const { userIds, admin } = await prepareUsers(t, CONNECTIONS);
  benchAuthenticator(t.app, userIds);
  const url = await listen(t.app);
  // Listening starts loading the chat tokenizer (about 18 MB of heap) in the background; were it still loading, it
  // would land in a heap reading and be counted against the connections.
  await loadTokenizer();
  const tap = tapPublish(t.app);
  return {
    async phase(measureMemory) {
      const { clients, memory } = await connectMeasured(url, userIds, measureMemory);
      const rounds = await broadcastRounds(clients, 'cdsa', t.app, admin, tap);
      await clients.close();
      await eventually(() => t.app.notifications.streamCount() === 0, 30_000);
      return { rounds, memory };
    },
    async close() {
      await t.close();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function cdsaCrossInstance(): Promise<{ local: RoundResult[]; remote: RoundResult[] }> {
  const a = await buildTestApp({ env: { LOG_LEVEL: 'error' }, processJobs: false });
  const b = await buildTestApp({ env: { LOG_LEVEL: 'error' }, processJobs: false, share: a });
  try {
    const { userIds, admin } = await prepareUsers(a, CONNECTIONS);
    benchAuthenticator(b.app, userIds);
    const url = await listen(b.app);
    const tapA = tapPublish(a.app);
    const tapB = tapPublish(b.app);
    const clients = new Clients();
    await clients.connect(url, userIds);
    const local = await broadcastRounds(clients, 'local', b.app, admin, tapB);
    const remote = await broadcastRounds(clients, 'remote', a.app, admin, tapA);
    await clients.close();
    return { local, remote };
  } finally {
    await b.close();
    await a.close();
  }
}

console.log(
  `notification fan-out: ${CONNECTIONS} SSE connections; ${PHASES} alternating phases per broadcaster, ` +
    `${ROUNDS} measured broadcasts each (median of all ${PHASES * ROUNDS} shown)`,
);
// Both broadcasters stay up; their phases alternate, so a change in the machine's speed during the run (this is a
// shared VM) falls on both alike instead of on whichever ran second.
const bareServer = await startBare();
const cdsaServer = await startCdsa();
const bare: { rounds: RoundResult[]; memory?: Memory } = { rounds: [] };
const cdsa: { rounds: RoundResult[]; memory?: Memory } = { rounds: [] };
for (let phase = 0; phase < PHASES; phase += 1) {
  for (const [server, into] of [
    [bareServer, bare],
    [cdsaServer, cdsa],
  ] as const) {
    const result = await server.phase(phase === 0);
    into.rounds.push(...result.rounds);
    into.memory ??= result.memory;
  }
}
await cdsaServer.close();
await bareServer.close();
report('bare node:http broadcaster', bare.rounds, bare.memory);
report(`CDSA broadcast (${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded'})`, cdsa.rounds, cdsa.memory);
const bareP99 = median(bare.rounds, 'p99');
const cdsaP99 = median(cdsa.rounds, 'p99');
const fanoutP99 = median(cdsa.rounds, 'fanoutP99');
console.log(
  `p99 ratio vs bare: ${(cdsaP99 / bareP99).toFixed(2)}x end to end (persisting ${CONNECTIONS} rows included), ` +
    `${(fanoutP99 / bareP99).toFixed(2)}x fan-out only (target <= 2x); absolute p99 ${fmt(cdsaP99)} (target < 250 ms)`,
);

if (multiInstance) {
  const cross = await cdsaCrossInstance();
  report('streams on B, broadcast on B', cross.local);
  report('streams on B, broadcast on A (Redis)', cross.remote);
  const added = median(cross.remote, 'fanoutP99') - median(cross.local, 'fanoutP99');
  console.log(`cross-instance hop adds ${fmt(added)} at p99 of fan-out (target < 20 ms)`);
} else {
  console.log('cross-instance hop: skipped (set DATABASE_URL and REDIS_URL to measure it)');
}

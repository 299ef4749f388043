/**
 * What the chat gateway adds on top of the provider, alone and under load. The mock LLM streams 64 chunks 20 ms apart
 * (OpenAI chat completions SSE). Three clients read the same answer:
 * - direct: a bare client reads the mock itself. This is the baseline the sequential targets are measured against.
 * - relay: a bare client reads it through a byte-for-byte relay in a process of its own (bench/fixtures/sse-relay.ts),
 *   the least any gateway can add: one more process to wake and one more hop. "over relay" is what CDSA adds beyond it.
 * - gateway: a client reads POST /api/v1/chat/stream, which authenticates, checks the user's daily budget, stores the
 *   message (encrypted, audited), redacts (OpenAI is a cloud provider here), calls the mock through the AI SDK and
 *   relays tokens over SSE.
 *
 * Per database (the embedded one always; PostgreSQL with Redis too when DATABASE_URL and REDIS_URL are set), in one run:
 * 1. sequential rounds in rotation (first token of a one-chunk answer; full 64-chunk streams);
 * 2. bursts: the bare relay with 200 streams at once (the ceiling for any gateway in its own process on this machine),
 *    then CDSA with 50, 200 and 500 streams at once. Half of a burst's turns continue an earlier session (its history
 *    is read, decrypted, counted and redacted), half open a new one. Printed: first-token p50/p99 from the moment the
 *    burst was sent, and turn starts per second (streams / time until the last of them had its first token);
 * 3. nothing lost, after the 500 burst: every stream ended with `done` completed and all 64 chunks, every user message
 *    and every answer is stored as streamed, each has its USER_QUERY / LLM_REQUEST audit event, and `cdsa audit
 *    verify` finds the chain valid. Any failure makes the run exit non-zero.
 *
 * The gateway is the production server, built and started as `npm start` starts it (its runtime flags included); the
 * embedded database lives in a data directory on disk. The mock and the clients run in another process, as they would
 * on other machines: the server's own work then delays the server only, not the clock of the client measuring it.
 *
 *   npm run build && npx tsx bench/chat.bench.ts [full streams per client=24]
 *   DATABASE_URL=postgres://... REDIS_URL=redis://... npx tsx bench/chat.bench.ts   (both databases; the PostgreSQL one
 *   gets a database of its own, created and dropped)
 *
 * Knobs (environment): CHAT_BENCH_DATABASES=embedded|postgres|both, CHAT_BENCH_BURSTS=50,200,500,
 * CHAT_BENCH_SEQUENTIAL=false (bursts only), CHAT_BENCH_CPU_PROF=<dir> (the server runs with --cpu-prof into <dir>,
 * only the bursts are run after a short warm-up; summarise with `npx tsx bench/lib/cpuprofile-summary.ts <file>`),
 * CHAT_BENCH_NODE_FLAGS (more node flags for the server, to try one against the start script's).
 */
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { benchServerEnv, postSse } from './lib/bench-server.js';
import { percentile } from './lib/http-load.js';
import { createPostgresDatabase, dropPostgresDatabase } from '../test/helpers/postgres.js';
import { freePort, productionServerArgs, ROOT, waitForHttp } from '../test/helpers/process.js';
import { startMockLlm, textReply, type MockLlm } from '../test/mock-llm/server.js';

const CHUNKS = 64;
const CHUNK_DELAY_MS = 20;
const WARMUP = 3;
/** First-token rounds per client (a one-chunk answer), for percentiles worth the name. */
const TTFT_ROUNDS = 200;
/** Analysts the bursts' turns are spread over (each has its own budget row, sessions and rate-limit key). */
const USERS = 10;
const RELAY_BURST = 200;
const MESSAGE = 'Please write to Jane Doe at jane.doe@example.com about the Berlin office, reference ';
const ANSWER = Array.from({ length: CHUNKS }, (_, i) => `tok${i} `);

// Messages between the two processes ------------------------------------------------------------------------------

interface Target {
  url: string;
  /** Authorization headers, one per analyst. */
  headers: Array<Record<string, string>>;
}

type Command =
  | { type: 'sequential'; target: Target; relayUrl: string; iterations: number }
  | { type: 'warmup'; target: Target; turns: number }
  | { type: 'relay-burst'; relayUrl: string; streams: number }
  | { type: 'burst'; target: Target; streams: number; sessions: SessionRef[] }
  | { type: 'check'; target: Target; streams: GatewayStream[] }
  | { type: 'exit' };

interface SessionRef {
  user: number;
  sessionId: string;
}

interface GatewayStream {
  user: number;
  /** What was sent, and whether it continued an existing session. */
  message: string;
  continued: boolean;
  status: number;
  sessionId: string | null;
  userMessageId: string | null;
  assistantId: string | null;
  text: string;
  tokens: number;
  done: string | null;
  error: string | null;
  /** ms from the burst's start (or the request's, for a lone stream). */
  firstTokenMs: number | null;
}

interface BurstResult {
  streams: number;
  failed: number;
  p50: number;
  p99: number;
  startsPerSecond: number;
  seconds: number;
  failures: string[];
  gateway?: GatewayStream[];
}

interface Sample {
  ttftMs: number;
  /** Per chunk: the mock wrote it → the client had it. */
  deliveryMs: number[];
  /** Between two chunks in the client's hands. */
  gapMs: number[];
}

const pct = (values: number[], p: number): number => percentile([...values].sort((a, b) => a - b), p);
const fmt = (ms: number): string => `${ms.toFixed(2).padStart(8)} ms`;

// The client side: the mock provider and every client ---------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });

/** An OpenAI streaming call: to the mock itself (direct) or through the bare relay. */
async function openaiStream(url: string): Promise<number[]> {
  const received: number[] = [];
  const body = JSON.stringify({ model: 'mock-model', stream: true, messages: [{ role: 'user', content: 'go' }] });
  await postSse(agent, url, { authorization: 'Bearer bench' }, body, (_event, data) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> };
    if (chunk.choices[0]?.delta.content) received.push(performance.now());
  });
  return received;
}

/** One turn through the gateway; never throws (a failure is recorded in the result). */
async function gateway(target: Target, user: number, sessionId?: string, startedAt = performance.now()): Promise<GatewayStream & { received: number[] }> {
  const message = `${MESSAGE}${randomUUID()}`;
  const stream: GatewayStream & { received: number[] } = {
    user,
    message,
    continued: sessionId !== undefined,
    status: 0,
    sessionId: null,
    userMessageId: null,
    assistantId: null,
    text: '',
    tokens: 0,
    done: null,
    error: null,
    firstTokenMs: null,
    received: [],
  };
  const body = JSON.stringify({ message, model: 'openai/mock-model', ...(sessionId ? { session_id: sessionId } : {}) });
  try {
    stream.status = await postSse(agent, target.url, target.headers[user]!, body, (event, data) => {
      const parsed = JSON.parse(data) as Record<string, unknown>;
      switch (event) {
        case 'session':
          stream.sessionId = String(parsed.session_id);
          stream.userMessageId = String(parsed.message_id);
          break;
        case 'token': {
          const now = performance.now();
          stream.received.push(now);
          stream.firstTokenMs ??= now - startedAt;
          stream.tokens += 1;
          stream.text += String(parsed.delta);
          break;
        }
        case 'message':
          stream.assistantId = String(parsed.id);
          break;
        case 'error':
          stream.error = String(parsed.detail ?? parsed.title);
          break;
        case 'done':
          stream.done = String(parsed.status);
          break;
      }
    });
  } catch (error) {
    stream.error = String(error);
  }
  return stream;
}

async function measure(mock: MockLlm, chunks: number, client: () => Promise<number[]>): Promise<Sample> {
  mock.requests.length = 0;
  const started = performance.now();
  const received = await client();
  const written = mock.chatRequests()[0]!.outputWrittenAt;
  if (received.length !== chunks || written.length !== chunks) {
    throw new Error(`expected ${chunks} chunks, got ${received.length} received / ${written.length} written`);
  }
  return {
    ttftMs: received[0]! - started,
    deliveryMs: received.map((at, i) => at - written[i]!),
    gapMs: received.slice(1).map((at, i) => at - received[i]!),
  };
}

type Client = 'gateway' | 'direct' | 'relay';
const CLIENTS: Client[] = ['gateway', 'direct', 'relay'];

/** Rotates which client goes first, so none always runs on a warmer process; warm-up rounds are not kept. */
async function rotate(rounds: number, warmup: number, run: (client: Client) => Promise<Sample>): Promise<Record<Client, Sample[]>> {
  const samples: Record<Client, Sample[]> = { gateway: [], direct: [], relay: [] };
  for (let i = 0; i < warmup + rounds; i += 1) {
    for (let k = 0; k < CLIENTS.length; k += 1) {
      const client = CLIENTS[(i + k) % CLIENTS.length]!;
      const sample = await run(client);
      if (i >= warmup) samples[client].push(sample);
    }
  }
  return samples;
}

async function sequential(mock: MockLlm, command: Extract<Command, { type: 'sequential' }>): Promise<{ lines: string[]; sessions: SessionRef[] }> {
  const sessions: SessionRef[] = [];
  let turn = 0;
  const calls: Record<Client, () => Promise<number[]>> = {
    gateway: async () => {
      const user = turn++ % command.target.headers.length;
      const result = await gateway(command.target, user);
      if (result.status !== 200 || result.done !== 'completed') throw new Error(`a sequential turn failed: ${result.status} ${result.error ?? result.done}`);
      sessions.push({ user, sessionId: result.sessionId! });
      return result.received;
    },
    direct: () => openaiStream(`${mock.url}/v1/chat/completions`),
    relay: () => openaiStream(command.relayUrl),
  };
  const round = (chunks: number) => (client: Client) => measure(mock, chunks, calls[client]);
  const started = performance.now();
  mock.setDefault(textReply(['hello']));
  const ttft = await rotate(TTFT_ROUNDS, WARMUP, round(1));
  mock.setDefault(textReply(ANSWER, { chunkDelayMs: CHUNK_DELAY_MS }));
  const full = await rotate(command.iterations, 1, round(CHUNKS));

  const lines = [
    `sequential: ${TTFT_ROUNDS} first-token rounds + ${command.iterations} full streams per client, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  ];
  const columns = ['direct', 'relay', 'gateway', 'added', 'over relay'];
  lines.push(`${''.padEnd(22)}${['p50', 'p99'].map((p) => columns.map((c) => `${c} ${p}`.padStart(15)).join('')).join('  ')}`);
  const series: Array<[string, Record<Client, Sample[]>, (s: Sample) => number[]]> = [
    ['time to first token', ttft, (s) => [s.ttftMs]],
    ['chunk delivery delay', full, (s) => s.deliveryMs],
    ['inter-chunk gap', full, (s) => s.gapMs],
  ];
  for (const [name, source, of] of series) {
    const cells = [50, 99].map((p) => {
      const [d, r, g] = (['direct', 'relay', 'gateway'] as const).map((c) => pct(source[c].flatMap(of), p)) as [number, number, number];
      return [d, r, g, g - d, g - r].map((v) => fmt(v).padStart(15)).join('');
    });
    lines.push(`${name.padEnd(22)}${cells.join('  ')}`);
  }
  const paired = (other: Client) => ttft.gateway.map((s, i) => s.ttftMs - ttft[other][i]!.ttftMs);
  const gapAdded = (other: Client) => pct(full.gateway.flatMap((s) => s.gapMs), 99) - pct(full[other].flatMap((s) => s.gapMs), 99);
  lines.push(
    `added time to first token, paired rounds: p50 ${fmt(pct(paired('direct'), 50))} (target < 5 ms), ` +
      `p99 ${fmt(pct(paired('direct'), 99))} (target < 20 ms); over the bare relay: p50 ${fmt(pct(paired('relay'), 50))}, p99 ${fmt(pct(paired('relay'), 99))}`,
  );
  lines.push(`added inter-chunk gap p99 ${fmt(gapAdded('direct'))} (target < 2 ms); over the bare relay: ${fmt(gapAdded('relay'))}`);
  return { lines, sessions };
}

function summarise(streams: number, firstTokens: Array<number | null>, seconds: number, failures: string[]): BurstResult {
  const seen = firstTokens.filter((ms): ms is number => ms !== null);
  const last = seen.length === 0 ? Number.NaN : Math.max(...seen);
  return {
    streams,
    failed: failures.length,
    p50: pct(seen, 50),
    p99: pct(seen, 99),
    startsPerSecond: seen.length / (last / 1000),
    seconds,
    failures: failures.slice(0, 3),
  };
}

async function relayBurst(relayUrl: string, streams: number): Promise<BurstResult> {
  const started = performance.now();
  const outcomes = await Promise.allSettled(Array.from({ length: streams }, () => openaiStream(relayUrl)));
  const seconds = (performance.now() - started) / 1000;
  const failures = outcomes.flatMap((o) =>
    o.status === 'rejected' ? [String(o.reason)] : o.value.length !== CHUNKS ? [`${o.value.length} of ${CHUNKS} chunks`] : [],
  );
  const firstTokens = outcomes.map((o) => (o.status === 'fulfilled' && o.value[0] !== undefined ? o.value[0] - started : null));
  return summarise(streams, firstTokens, seconds, failures);
}

async function burst(command: Extract<Command, { type: 'burst' }>): Promise<BurstResult> {
  const users = command.target.headers.length;
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: command.streams }, (_, i) => {
      const existing = command.sessions[i];
      return existing ? gateway(command.target, existing.user, existing.sessionId, started) : gateway(command.target, i % users, undefined, started);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const failures = results.flatMap((r) =>
    r.status !== 200 || r.done !== 'completed' || r.tokens !== CHUNKS || r.assistantId === null
      ? [`status ${r.status}, done ${r.done}, ${r.tokens} of ${CHUNKS} chunks${r.error ? `: ${r.error}` : ''}`]
      : [],
  );
  const gatewayStreams = results.map(({ received: _received, ...rest }) => rest);
  return { ...summarise(command.streams, results.map((r) => r.firstTokenMs), seconds, failures), gateway: gatewayStreams };
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

interface StoredMessage {
  id: string;
  role: string;
  content: string;
  status: string;
}

/** Nothing lost: every message of every stream stored as streamed, each with its audit event. Returns the problems. */
async function check(command: Extract<Command, { type: 'check' }>): Promise<string[]> {
  const problems: string[] = [];
  const base = command.target.url.replace(/\/chat\/stream$/, '');
  const get = async (user: number, url: string): Promise<unknown> => {
    const response = await fetch(`${base}${url}`, { headers: command.target.headers[user] });
    if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}`);
    return response.json();
  };
  await pool(command.streams, 16, async (stream) => {
    if (stream.sessionId === null) {
      problems.push('a stream never said which session it was in');
      return;
    }
    const detail = (await get(stream.user, `/chat/sessions/${stream.sessionId}`)) as { messages: StoredMessage[] };
    const question = detail.messages.find((m) => m.id === stream.userMessageId);
    const answer = detail.messages.find((m) => m.id === stream.assistantId);
    if (!question || question.role !== 'user' || question.content !== stream.message) problems.push(`user message ${stream.userMessageId} is not stored as sent`);
    if (!answer || answer.role !== 'assistant' || answer.status !== 'completed' || answer.content !== stream.text) {
      problems.push(`answer ${stream.assistantId} is not stored as streamed`);
    }
  });
  // Each analyst sees their own events: every message id must appear in one USER_QUERY / LLM_REQUEST event.
  for (const [eventType, key] of [
    ['USER_QUERY', 'userMessageId'],
    ['LLM_REQUEST', 'assistantId'],
  ] as const) {
    const audited = new Set<string>();
    for (let user = 0; user < command.target.headers.length; user += 1) {
      let cursor: string | null = null;
      do {
        const page = (await get(
          user,
          `/audit/events?event_type=${eventType}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        )) as { items: Array<{ details: { message_id?: string } }>; next_cursor: string | null };
        for (const event of page.items) if (event.details.message_id) audited.add(event.details.message_id);
        cursor = page.next_cursor;
      } while (cursor);
    }
    const missing = command.streams.filter((s) => s[key] !== null && !audited.has(s[key]!)).length;
    if (missing > 0) problems.push(`${missing} messages have no ${eventType} event`);
  }
  return problems;
}

async function clientSide(): Promise<void> {
  const mock = await startMockLlm({ models: ['mock-model'] });
  process.send!({ type: 'mock', url: mock.url });
  process.on('message', (raw) => {
    const command = raw as Command;
    const reply = (value: unknown) => process.send!({ type: 'result', value });
    const run = async (): Promise<unknown> => {
      switch (command.type) {
        case 'sequential':
          return sequential(mock, command);
        case 'warmup': {
          mock.setDefault(textReply(ANSWER, { chunkDelayMs: CHUNK_DELAY_MS }));
          const sessions: SessionRef[] = [];
          for (let i = 0; i < command.turns; i += 1) {
            const user = i % command.target.headers.length;
            const result = await gateway(command.target, user);
            if (result.done !== 'completed') throw new Error(`a warm-up turn failed: ${result.status} ${result.error ?? result.done}`);
            sessions.push({ user, sessionId: result.sessionId! });
          }
          return { sessions };
        }
        case 'relay-burst':
          mock.setDefault(textReply(ANSWER, { chunkDelayMs: CHUNK_DELAY_MS }));
          return relayBurst(command.relayUrl, command.streams);
        case 'burst': {
          mock.setDefault(textReply(ANSWER, { chunkDelayMs: CHUNK_DELAY_MS }));
          // The mock keeps every request it saw: a 500-stream burst need not add to the pile.
          mock.requests.length = 0;
          return burst(command);
        }
        case 'check':
          return check(command);
        case 'exit':
          agent.destroy();
          await mock.close();
          process.exit(0);
      }
    };
    run().then(reply, (error: unknown) => process.send!({ type: 'error', message: String(error instanceof Error ? error.stack : error) }));
  });
}

// The server side: the production server ---------------------------------------------------------------------------

/** Registers an analyst through the API and signs in: the tokens are real, as a client's would be. */
async function signUp(base: string, index: number): Promise<Record<string, string>> {
  const username = `bench_analyst_${index}`;
  const password = `Bench-${randomUUID()}`;
  const post = (path: string, body: unknown) =>
    fetch(`${base}/api/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const registered = await post('/auth/register', { username, email: `${username}@example.test`, password });
  if (registered.status !== 201) throw new Error(`registering ${username} answered ${registered.status}: ${await registered.text()}`);
  const login = await post('/auth/login', { username, password });
  if (login.status !== 200) throw new Error(`signing in ${username} answered ${login.status}`);
  return { authorization: `Bearer ${((await login.json()) as { access_token: string }).access_token}` };
}

/** `cdsa audit verify` beside the running server (through it on the embedded database), as an operator runs it. */
function verifyAudit(env: NodeJS.ProcessEnv): Promise<{ valid: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/cdsa.js', 'audit', 'verify'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => {
      try {
        const report = JSON.parse(stdout) as { valid?: boolean };
        resolve({ valid: code === 0 && report.valid === true, output: stdout.trim().slice(0, 400) });
      } catch {
        resolve({ valid: false, output: `exit ${code}: ${(stderr || stdout).trim().slice(0, 400)}` });
      }
    });
  });
}

/**
 * The clock V8's profiler stamps samples with (CLOCK_MONOTONIC, µs), read in this process: the bursts' windows let the
 * profile summary leave out start-up and warm-up.
 */
const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n);

export interface ProfileWindow {
  name: string;
  from: number;
  to: number;
  turns: number;
}

const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

interface ClientProcess {
  run<T>(command: Command): Promise<T>;
}

function burstLine(name: string, result: BurstResult, relay?: BurstResult): string {
  const over = relay ? `  (${(result.p99 / relay.p99).toFixed(1)}x the relay's p99)` : '';
  return (
    `${name.padEnd(26)} first token p50 ${fmt(result.p50)}  p99 ${fmt(result.p99)}  ` +
    `${result.startsPerSecond.toFixed(0).padStart(5)} turn starts/s  all done in ${result.seconds.toFixed(2)} s  ` +
    `failed ${result.failed}${over}  [load ${load()}]`
  );
}

async function benchDatabase(
  kind: 'embedded' | 'postgres',
  client: ClientProcess,
  mockUrl: string,
  relayUrl: string,
  options: { iterations: number; bursts: number[]; sequentialRounds: boolean; cpuProfileDir: string | undefined },
): Promise<boolean> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-chat-bench-'));
  const baseUrl = process.env.DATABASE_URL;
  const databaseUrl = kind === 'postgres' ? await createPostgresDatabase(baseUrl!, 'cdsa_bench') : undefined;
  const port = await freePort();
  const serverArgs = productionServerArgs();
  const profileArgs = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=chat-${kind}.cpuprofile`] : [];
  // Extra runtime flags to try against the start script's (e.g. CHAT_BENCH_NODE_FLAGS=--max-semi-space-size=32).
  profileArgs.push(...(process.env.CHAT_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean));
  const env = benchServerEnv({ port, dataDir, mockUrl, databaseUrl, redisUrl: kind === 'postgres' ? process.env.REDIS_URL : undefined });

  const server = spawn(process.execPath, [...profileArgs, ...serverArgs], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const serverExited = new Promise<number | null>((resolve) => server.on('exit', resolve));
  let ok = true;
  try {
    const base = `http://127.0.0.1:${port}`;
    await Promise.race([
      waitForHttp(`${base}/health/ready`, 300_000),
      serverExited.then((code) => Promise.reject(new Error(`the server exited (${code}) before it was ready`))),
    ]);
    const headers = [];
    for (let i = 0; i < USERS; i += 1) headers.push(await signUp(base, i));
    const target: Target = { url: `${base}/api/v1/chat/stream`, headers };
    console.log(`\n== ${kind === 'postgres' ? 'PostgreSQL + Redis' : 'embedded database, on disk'}; server: node ${[...profileArgs, ...serverArgs].join(' ')}`);

    let sessions: SessionRef[];
    const windows: ProfileWindow[] = [];
    if (options.sequentialRounds) {
      const result = await client.run<{ lines: string[]; sessions: SessionRef[] }>({ type: 'sequential', target, relayUrl, iterations: options.iterations });
      for (const line of result.lines) console.log(line);
      console.log(`[load ${load()}]`);
      sessions = result.sessions;
    } else {
      sessions = (await client.run<{ sessions: SessionRef[] }>({ type: 'warmup', target, turns: 20 })).sessions;
    }

    const relay = await client.run<BurstResult>({ type: 'relay-burst', relayUrl, streams: RELAY_BURST });
    console.log(burstLine(`bare relay, ${RELAY_BURST} at once`, relay));
    if (relay.failed > 0) ok = false;
    let last: BurstResult | undefined;
    for (const streams of options.bursts) {
      // Half continue earlier sessions (the least used first), half open new ones.
      const continuing = sessions.slice(0, Math.floor(streams / 2));
      const from = monotonicMicros();
      const result = await client.run<BurstResult>({ type: 'burst', target, streams, sessions: continuing });
      windows.push({ name: `CDSA, ${streams} at once`, from, to: monotonicMicros(), turns: streams });
      console.log(burstLine(`CDSA, ${streams} at once`, result, streams === RELAY_BURST ? relay : undefined));
      for (const failure of result.failures) console.log(`  failure: ${failure}`);
      if (result.failed > 0) ok = false;
      sessions = [...sessions.slice(continuing.length), ...continuing, ...result.gateway!.flatMap((s) => (s.continued || !s.sessionId ? [] : [{ user: s.user, sessionId: s.sessionId }]))];
      last = result;
    }

    if (options.cpuProfileDir) {
      fs.writeFileSync(path.join(options.cpuProfileDir, `chat-${kind}.windows.json`), JSON.stringify(windows));
    }
    if (last && !options.cpuProfileDir) {
      const problems = await client.run<string[]>({ type: 'check', target, streams: last.gateway! });
      const audit = await verifyAudit({ ...env, LOG_LEVEL: 'error' });
      if (!audit.valid) problems.push(`cdsa audit verify: ${audit.output}`);
      console.log(
        `nothing lost (${last.streams} at once): ${last.streams - last.failed} streams ended with done completed and all chunks; ` +
          `${problems.length === 0 ? 'every message stored as streamed, every one audited, the audit chain verifies' : `PROBLEMS: ${problems.slice(0, 5).join('; ')}`}`,
      );
      if (problems.length > 0) ok = false;
    }
  } finally {
    server.kill('SIGTERM');
    await serverExited;
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (baseUrl && databaseUrl) await dropPostgresDatabase(baseUrl, databaseUrl);
  }
  return ok;
}

async function serverSide(): Promise<void> {
  const iterations = Number(process.argv[2] ?? 24);
  const bursts = (process.env.CHAT_BENCH_BURSTS ?? '50,200,500').split(',').map(Number);
  const cpuProfileDir = process.env.CHAT_BENCH_CPU_PROF ? path.resolve(process.env.CHAT_BENCH_CPU_PROF) : undefined;
  const sequentialRounds = process.env.CHAT_BENCH_SEQUENTIAL !== 'false' && !cpuProfileDir;
  const postgresAvailable = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
  const wanted = process.env.CHAT_BENCH_DATABASES ?? 'both';
  const databases = (['embedded', 'postgres'] as const).filter((kind) =>
    kind === 'postgres' ? postgresAvailable && wanted !== 'embedded' : wanted !== 'postgres',
  );
  if (databases.length === 0) throw new Error('no database to run on (CHAT_BENCH_DATABASES=postgres needs DATABASE_URL and REDIS_URL)');
  if (!fs.existsSync(path.join(ROOT, 'dist', 'server.js'))) throw new Error('dist/server.js is missing: run `npm run build` first');

  const child = fork(fileURLToPath(import.meta.url), ['--client'], { execArgv: process.execArgv });
  const waiting: Array<{ resolve: (value: unknown) => void; reject: (error: Error) => void }> = [];
  child.on('message', (raw) => {
    const message = raw as { type: string; url?: string; value?: unknown; message?: string };
    const next = waiting.shift();
    if (message.type === 'error') next?.reject(new Error(message.message));
    else next?.resolve(message.type === 'mock' ? message.url : message.value);
  });
  child.on('exit', () => {
    for (const pending of waiting.splice(0)) pending.reject(new Error('the client process exited'));
  });
  const nextMessage = <T>() => new Promise<T>((resolve, reject) => waiting.push({ resolve: resolve as (value: unknown) => void, reject }));
  const client: ClientProcess = {
    run<T>(command: Command) {
      const result = nextMessage<T>();
      child.send(command);
      return result;
    },
  };
  const mockUrl = await nextMessage<string>();

  const relayPort = await freePort();
  const relay = spawn(process.execPath, ['--import', 'tsx', 'bench/fixtures/sse-relay.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(relayPort), UPSTREAM_URL: `${mockUrl}/v1/chat/completions` },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const relayExited = new Promise<number | null>((resolve) => relay.on('exit', resolve));
  console.log(
    `chat gateway benchmark: ${CHUNKS}-chunk answers ${CHUNK_DELAY_MS} ms apart (OpenAI wire, cloud model so prompts are redacted), ` +
      `bursts ${bursts.join('/')} over ${USERS} analysts; ${os.cpus().length} CPUs, load ${load()}`,
  );
  let ok = true;
  try {
    await Promise.race([
      new Promise((resolve) => relay.once('message', resolve)),
      relayExited.then((code) => Promise.reject(new Error(`the relay exited (${code}) before it was ready`))),
    ]);
    const relayUrl = `http://127.0.0.1:${relayPort}/v1/chat/completions`;
    for (const kind of databases) {
      ok = (await benchDatabase(kind, client, mockUrl, relayUrl, { iterations, bursts, sequentialRounds, cpuProfileDir })) && ok;
    }
    if (!postgresAvailable) console.log('\n(PostgreSQL + Redis not run: set DATABASE_URL and REDIS_URL)');
    console.log(`\ntargets at 200 at once on PostgreSQL: first token p99 < 1500 ms, >= 150 turn starts/s; ${ok ? 'no failures' : 'FAILURES above'}`);
  } finally {
    child.send({ type: 'exit' } satisfies Command);
    relay.kill('SIGTERM');
    await relayExited;
  }
  if (!ok) process.exitCode = 1;
}

(process.argv[2] === '--client' ? clientSide() : serverSide()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

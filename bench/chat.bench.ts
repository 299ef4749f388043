/**
 * What the chat gateway adds on top of the provider. The mock LLM streams 64 chunks 20 ms apart (OpenAI chat
 * completions SSE). In the same run, in rotation, three clients read the same answer:
 * - direct: a bare client reads the mock itself. This is the baseline the targets are measured against.
 * - relay: a bare client reads it through a byte-for-byte relay in a process of its own (bench/fixtures/sse-relay.ts),
 *   the least any gateway can add: one more process to wake and one more hop. "over relay" is what CDSA adds beyond it.
 * - gateway: a client reads POST /api/v1/chat/stream, which authenticates, stores the message (encrypted, audited),
 *   redacts (OpenAI is a cloud provider here), calls the mock through the AI SDK and relays tokens over SSE.
 * Then 200 streams at once, none of which may fail.
 *
 * The gateway is the production server, built and started as `npm start` starts it (its runtime flags included), on
 * the embedded database in a data directory on disk; the benchmark registers its analysts through the API. The mock
 * and the clients run in another process, as they would on other machines: the server's own work (the embedded
 * database runs on its thread) then delays the server only, not the clock of the client measuring it. The mock logs
 * when it wrote each chunk, so delivery delay is measured per chunk, on the client's clock.
 *
 *   npm run build && npx tsx bench/chat.bench.ts [streams per client=24] [concurrent=200]
 *   DATABASE_URL=postgres://... REDIS_URL=redis://... npx tsx bench/chat.bench.ts   (PostgreSQL and Redis; a database
 *   of its own is created and dropped)
 */
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { percentile } from './lib/http-load.js';
import { createPostgresDatabase, dropPostgresDatabase } from '../test/helpers/postgres.js';
import { freePort, productionServerArgs, ROOT, waitForHttp } from '../test/helpers/process.js';
import { startMockLlm, textReply, type MockLlm } from '../test/mock-llm/server.js';

const CHUNKS = 64;
const CHUNK_DELAY_MS = 20;
const WARMUP = 3;
/** First-token rounds per client (a one-chunk answer), for percentiles worth the name. */
const TTFT_ROUNDS = 200;

interface Go {
  type: 'go';
  url: string;
  /** The bare relay in front of the mock (bench/fixtures/sse-relay.ts). */
  relayUrl: string;
  /** Authorization headers: the first user for the sequential rounds, all of them for the concurrent streams. */
  headers: Array<Record<string, string>>;
  iterations: number;
  concurrent: number;
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

// The client side: the mock provider and both clients --------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

/** POSTs and calls `onEvent` for each SSE event as it arrives; resolves with the status at the end of the response. */
function postSse(url: string, headers: Record<string, string>, body: string, onEvent: (event: string, data: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (response) => {
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data !== '') onEvent(event, data);
          }
        });
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** An OpenAI streaming call: to the mock itself (direct) or through the bare relay. */
async function openaiStream(url: string): Promise<number[]> {
  const received: number[] = [];
  const body = JSON.stringify({ model: 'mock-model', stream: true, messages: [{ role: 'user', content: 'go' }] });
  await postSse(url, { authorization: 'Bearer bench' }, body, (_event, data) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> };
    if (chunk.choices[0]?.delta.content) received.push(performance.now());
  });
  return received;
}

async function gateway(url: string, headers: Record<string, string>): Promise<{ received: number[]; done: string | null }> {
  const received: number[] = [];
  let done: string | null = null;
  const body = JSON.stringify({ message: 'Please write to jane.doe@example.com', model: 'openai/mock-model' });
  const status = await postSse(url, headers, body, (event, data) => {
    if (event === 'token') received.push(performance.now());
    else if (event === 'done') done = (JSON.parse(data) as { status: string }).status;
  });
  if (status !== 200) throw new Error(`chat stream answered ${status}`);
  return { received, done };
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

async function clientSide(): Promise<void> {
  const mock = await startMockLlm({ models: ['mock-model'] });
  process.send!({ type: 'mock', url: mock.url });
  const go = await new Promise<Go>((resolve) => process.once('message', (message) => resolve(message as Go)));
  const startedAll = performance.now();
  const calls: Record<Client, () => Promise<number[]>> = {
    gateway: async () => (await gateway(go.url, go.headers[0]!)).received,
    direct: () => openaiStream(`${mock.url}/v1/chat/completions`),
    relay: () => openaiStream(go.relayUrl),
  };
  const round = (chunks: number) => (client: Client) => measure(mock, chunks, calls[client]);

  mock.setDefault(textReply(['hello']));
  const ttft = await rotate(TTFT_ROUNDS, WARMUP, round(1));
  mock.setDefault(textReply(Array.from({ length: CHUNKS }, (_, i) => `tok${i} `), { chunkDelayMs: CHUNK_DELAY_MS }));
  const full = await rotate(go.iterations, 1, round(CHUNKS));

  const concurrentStarted = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from({ length: go.concurrent }, (_, i) => gateway(go.url, go.headers[i % go.headers.length]!)),
  );
  const concurrentSeconds = (performance.now() - concurrentStarted) / 1000;
  const failed = outcomes.filter((o) => o.status === 'rejected' || o.value.done !== 'completed' || o.value.received.length !== CHUNKS);
  const concurrentTtft = outcomes.flatMap((o) =>
    o.status === 'fulfilled' && o.value.received[0] !== undefined ? [o.value.received[0] - concurrentStarted] : [],
  );

  console.log(
    `chat gateway: ${TTFT_ROUNDS} first-token rounds + ${go.iterations} full streams per client ` +
      `(${CHUNKS} chunks ${CHUNK_DELAY_MS} ms apart, OpenAI wire, cloud model so prompts are redacted), ` +
      `${((performance.now() - startedAll) / 1000).toFixed(1)} s, database: ${process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded'}`,
  );
  const columns = ['direct', 'relay', 'gateway', 'added', 'over relay'];
  console.log(`${''.padEnd(22)}${['p50', 'p99'].map((p) => columns.map((c) => `${c} ${p}`.padStart(15)).join('')).join('  ')}`);
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
    console.log(`${name.padEnd(22)}${cells.join('  ')}`);
  }
  const paired = (other: Client) => ttft.gateway.map((s, i) => s.ttftMs - ttft[other][i]!.ttftMs);
  const gapAdded = (other: Client) => pct(full.gateway.flatMap((s) => s.gapMs), 99) - pct(full[other].flatMap((s) => s.gapMs), 99);
  console.log(
    `added time to first token, paired rounds: p50 ${fmt(pct(paired('direct'), 50))} (target < 5 ms), ` +
      `p99 ${fmt(pct(paired('direct'), 99))} (target < 20 ms); over the bare relay: p50 ${fmt(pct(paired('relay'), 50))}, p99 ${fmt(pct(paired('relay'), 99))}`,
  );
  console.log(`added inter-chunk gap p99 ${fmt(gapAdded('direct'))} (target < 2 ms); over the bare relay: ${fmt(gapAdded('relay'))}`);
  console.log(
    `${go.concurrent} concurrent streams: ${failed.length} failed; all done in ${concurrentSeconds.toFixed(2)} s ` +
      `(one stream alone ≈ ${(((CHUNKS - 1) * CHUNK_DELAY_MS) / 1000).toFixed(2)} s); first token p50 ${fmt(pct(concurrentTtft, 50))}, ` +
      `p99 ${fmt(pct(concurrentTtft, 99))}`,
  );
  for (const outcome of failed.slice(0, 3)) console.log('  failure:', outcome.status === 'rejected' ? String(outcome.reason) : outcome.value.done);
  agent.destroy();
  await mock.close();
  process.send!({ type: 'done', failed: failed.length });
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

async function serverSide(): Promise<void> {
  const iterations = Number(process.argv[2] ?? 24);
  const concurrent = Number(process.argv[3] ?? 200);
  if (!fs.existsSync(path.join(ROOT, 'dist', 'server.js'))) throw new Error('dist/server.js is missing: run `npm run build` first');
  const child = fork(fileURLToPath(import.meta.url), ['--client'], { execArgv: process.execArgv });
  const messages: Array<(message: { type: string; url?: string; failed?: number }) => void> = [];
  child.on('message', (message) => messages.shift()?.(message as { type: string }));
  const next = () => new Promise<{ type: string; url?: string; failed?: number }>((resolve) => messages.push(resolve));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

  const { url: mockUrl } = await next();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-chat-bench-'));
  // On PostgreSQL the run gets a database of its own, dropped at the end.
  const baseUrl = process.env.DATABASE_URL;
  const databaseUrl = baseUrl ? await createPostgresDatabase(baseUrl, 'cdsa_bench') : undefined;
  const port = await freePort();
  const serverArgs = productionServerArgs();
  const server = spawn(process.execPath, serverArgs, {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl ?? '',
      REDIS_URL: process.env.REDIS_URL ?? '',
      LOG_LEVEL: 'warn',
      REGISTRATION_MODE: 'open',
      OPENAI_BASE_URL: `${mockUrl}/v1`,
      OPENAI_API_KEY: 'sk-bench-0123456789abcdef',
      OPENAI_LOCAL: 'false',
      OLLAMA_BASE_URL: '',
      LLM_DEFAULT_MODEL: 'openai/mock-model',
      RATE_LIMIT_REQUESTS: '10000000',
      AUTH_RATE_LIMIT_REQUESTS: '10000000',
      CHAT_RATE_LIMIT_REQUESTS: '10000000',
      LLM_REQUEST_TIMEOUT_MS: '30000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const serverExited = new Promise<number | null>((resolve) => server.on('exit', resolve));
  const relayPort = await freePort();
  const relay = spawn(process.execPath, ['--import', 'tsx', 'bench/fixtures/sse-relay.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(relayPort), UPSTREAM_URL: `${mockUrl}/v1/chat/completions` },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const relayExited = new Promise<number | null>((resolve) => relay.on('exit', resolve));
  try {
    await Promise.race([
      new Promise((resolve) => relay.once('message', resolve)),
      relayExited.then((code) => Promise.reject(new Error(`the relay exited (${code}) before it was ready`))),
    ]);
    const base = `http://127.0.0.1:${port}`;
    await Promise.race([
      waitForHttp(`${base}/health/ready`),
      serverExited.then((code) => Promise.reject(new Error(`the server exited (${code}) before it was ready`))),
    ]);
    const headers = [];
    for (let i = 0; i < 5; i += 1) headers.push(await signUp(base, i));
    console.log(`server: node ${serverArgs.join(' ')} (as npm start runs it), database: ${databaseUrl ? 'PostgreSQL' : 'embedded, on disk'}`);
    const done = next();
    const relayUrl = `http://127.0.0.1:${relayPort}/v1/chat/completions`;
    child.send({ type: 'go', url: `${base}/api/v1/chat/stream`, relayUrl, headers, iterations, concurrent } satisfies Go);
    const result = await Promise.race([done, exited.then(() => ({ type: 'exit', failed: 1 }))]);
    if ((result.failed ?? 1) > 0) process.exitCode = 1;
  } finally {
    child.kill();
    server.kill('SIGTERM');
    relay.kill('SIGTERM');
    await Promise.all([serverExited, relayExited]);
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (baseUrl && databaseUrl) await dropPostgresDatabase(baseUrl, databaseUrl);
  }
}

(process.argv[2] === '--client' ? clientSide() : serverSide()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

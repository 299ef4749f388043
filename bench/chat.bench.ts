/**
 * What the chat gateway adds on top of the provider. The mock LLM streams 64 chunks 20 ms apart (OpenAI chat
 * completions SSE). In the same run, alternating, a bare client reads the mock directly (the baseline) and a client
 * reads POST /api/v1/chat/stream, which authenticates, stores the message (encrypted, audited), redacts (OpenAI is a
 * cloud provider here), calls the mock through the AI SDK and relays tokens over SSE. Then 200 streams at once, none
 * of which may fail.
 *
 * The mock and the clients run in a child process, as they would on other machines: the server's own work (the
 * embedded database runs on its thread) then delays the server only, not the clock of the client measuring it. The
 * mock logs when it wrote each chunk, so delivery delay is measured per chunk, on the client's clock.
 *
 *   npx tsx bench/chat.bench.ts [streams per client=12] [concurrent=200]
 *   DATABASE_URL=postgres://... npx tsx bench/chat.bench.ts   (on a real PostgreSQL instead of the embedded one)
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { percentile } from './lib/http-load.js';
import { buildTestApp } from '../test/helpers/app.js';
import { createUser } from '../test/helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../test/mock-llm/server.js';

const CHUNKS = 64;
const CHUNK_DELAY_MS = 20;
const WARMUP = 3;
/** First-token rounds per client (a one-chunk answer), for percentiles worth the name. */
const TTFT_ROUNDS = 60;

interface Go {
  type: 'go';
  url: string;
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

async function direct(mock: MockLlm): Promise<number[]> {
  const received: number[] = [];
  const body = JSON.stringify({ model: 'mock-model', stream: true, messages: [{ role: 'user', content: 'go' }] });
  await postSse(`${mock.url}/v1/chat/completions`, { authorization: 'Bearer bench' }, body, (_event, data) => {
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

/** Alternates which client goes first, so neither always runs on a warmer process. */
async function alternate(rounds: number, warmup: number, run: (gatewayFirst: boolean) => Promise<[Sample, Sample]>) {
  const viaGateway: Sample[] = [];
  const viaDirect: Sample[] = [];
  for (let i = 0; i < warmup + rounds; i += 1) {
    const gatewayFirst = i % 2 === 0;
    const [a, b] = await run(gatewayFirst);
    if (i < warmup) continue;
    viaGateway.push(gatewayFirst ? a : b);
    viaDirect.push(gatewayFirst ? b : a);
  }
  return { viaGateway, viaDirect };
}

async function clientSide(): Promise<void> {
  const mock = await startMockLlm({ models: ['mock-model'] });
  process.send!({ type: 'mock', url: mock.url });
  const go = await new Promise<Go>((resolve) => process.once('message', (message) => resolve(message as Go)));
  const startedAll = performance.now();
  const viaGateway = async (): Promise<number[]> => (await gateway(go.url, go.headers[0]!)).received;
  const pair = (chunks: number) => async (gatewayFirst: boolean): Promise<[Sample, Sample]> => {
    const first = await measure(mock, chunks, gatewayFirst ? viaGateway : () => direct(mock));
    const second = await measure(mock, chunks, gatewayFirst ? () => direct(mock) : viaGateway);
    return [first, second];
  };

  mock.setDefault(textReply(['hello']));
  const ttft = await alternate(TTFT_ROUNDS, WARMUP, pair(1));
  mock.setDefault(textReply(Array.from({ length: CHUNKS }, (_, i) => `tok${i} `), { chunkDelayMs: CHUNK_DELAY_MS }));
  const full = await alternate(go.iterations, 1, pair(CHUNKS));

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
  console.log(
    `${'metric'.padEnd(24)} ${'direct p50'.padStart(11)} ${'gateway p50'.padStart(11)} ${'added p50'.padStart(11)} ` +
      `${'direct p99'.padStart(11)} ${'gateway p99'.padStart(11)} ${'added p99'.padStart(11)}`,
  );
  const rows: Array<[string, number[], number[]]> = [
    ['time to first token', ttft.viaDirect.map((s) => s.ttftMs), ttft.viaGateway.map((s) => s.ttftMs)],
    ['chunk delivery delay', full.viaDirect.flatMap((s) => s.deliveryMs), full.viaGateway.flatMap((s) => s.deliveryMs)],
    ['inter-chunk gap', full.viaDirect.flatMap((s) => s.gapMs), full.viaGateway.flatMap((s) => s.gapMs)],
  ];
  for (const [name, raw, gw] of rows) {
    const [r50, g50, r99, g99] = [pct(raw, 50), pct(gw, 50), pct(raw, 99), pct(gw, 99)];
    console.log(`${name.padEnd(24)} ${fmt(r50)} ${fmt(g50)} ${fmt(g50 - r50)} ${fmt(r99)} ${fmt(g99)} ${fmt(g99 - r99)}`);
  }
  const paired = ttft.viaGateway.map((s, i) => s.ttftMs - ttft.viaDirect[i]!.ttftMs);
  const gapAdded = pct(full.viaGateway.flatMap((s) => s.gapMs), 99) - pct(full.viaDirect.flatMap((s) => s.gapMs), 99);
  console.log(`added time to first token, paired rounds: p50 ${fmt(pct(paired, 50))} (target < 5 ms), p99 ${fmt(pct(paired, 99))} (target < 20 ms)`);
  console.log(
    `added inter-chunk gap p99 ${fmt(gapAdded)} (target < 2 ms); time to first token gateway/direct p50 ratio ` +
      `${(pct(ttft.viaGateway.map((s) => s.ttftMs), 50) / pct(ttft.viaDirect.map((s) => s.ttftMs), 50)).toFixed(1)}x`,
  );
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

// The server side: the real app ------------------------------------------------------------------------------------

async function serverSide(): Promise<void> {
  const iterations = Number(process.argv[2] ?? 12);
  const concurrent = Number(process.argv[3] ?? 200);
  const child = fork(fileURLToPath(import.meta.url), ['--client'], { execArgv: process.execArgv });
  const messages: Array<(message: { type: string; url?: string; failed?: number }) => void> = [];
  child.on('message', (message) => messages.shift()?.(message as { type: string }));
  const next = () => new Promise<{ type: string; url?: string; failed?: number }>((resolve) => messages.push(resolve));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

  const { url: mockUrl } = await next();
  const t = await buildTestApp({
    env: {
      OPENAI_BASE_URL: `${mockUrl}/v1`,
      OPENAI_API_KEY: 'sk-bench-0123456789abcdef',
      OPENAI_LOCAL: 'false',
      OLLAMA_BASE_URL: '',
      LLM_DEFAULT_MODEL: 'openai/mock-model',
      CHAT_RATE_LIMIT_REQUESTS: '10000000',
      LLM_REQUEST_TIMEOUT_MS: '30000',
    },
  });
  try {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as { port: number };
    const users = [];
    for (let i = 0; i < 5; i += 1) users.push(await createUser(t));
    const done = next();
    child.send({ type: 'go', url: `http://127.0.0.1:${port}/api/v1/chat/stream`, headers: users.map((u) => u.headers), iterations, concurrent } satisfies Go);
    const result = await Promise.race([done, exited.then(() => ({ type: 'exit', failed: 1 }))]);
    if ((result.failed ?? 1) > 0) process.exitCode = 1;
  } finally {
    child.kill();
    await t.close();
  }
}

(process.argv[2] === '--client' ? clientSide() : serverSide()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

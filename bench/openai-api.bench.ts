/**
 * What the OpenAI-compatible POST /v1/chat/completions adds on top of the provider, beside POST /api/v1/chat/stream, in
 * one run. The mock LLM speaks OpenAI chat completions SSE; three clients read the same answers, in rotation:
 * - direct: a bare client reads the mock itself — the ceiling, what no gateway can beat;
 * - chat/stream: POST /api/v1/chat/stream with an access token (a stored session: the message is stored encrypted and
 *   audited before the model is called);
 * - /v1: POST /v1/chat/completions with an API key (a stateless turn: nothing stored as a session, USER_QUERY audited
 *   before the model is called), read as OpenAI's clients read it (data-only SSE, `chat.completion.chunk`).
 * Both CDSA paths redact (OpenAI is a cloud provider here, and the message carries an e-mail address) and restore.
 *
 * Measured:
 * 1. time to first token of a one-chunk answer, from the request being sent to the first text in the client's hands;
 * 2. per-chunk overhead: for each of 32 chunks written by the mock 10 ms apart, the time from the mock writing it to
 *    the client having it (the mock and the clients share this process's clock).
 * Printed: p50/p99 of each, what each CDSA path adds over direct, and /v1 over chat/stream as a ratio. Targets: /v1 no
 * worse than chat/stream, and p50 < 5 ms added.
 *
 * The server is the production one, started as `npm start` starts it (its runtime flags included), in a process of its
 * own, on the embedded database in a temporary data directory.
 *
 *   npm run build:server && npx tsx bench/openai-api.bench.ts [first-token rounds per client=60] [streams per client=8]
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchServerEnv, postSse } from './lib/bench-server.js';
import { percentile } from './lib/http-load.js';
import { freePort, productionServerArgs, ROOT, waitForHttp } from '../test/helpers/process.js';
import { startMockLlm, textReply, type MockLlm } from '../test/mock-llm/server.js';

const TTFT_ROUNDS = Number(process.argv[2] ?? 60);
const STREAMS = Number(process.argv[3] ?? 8);
const WARMUP = 5;
const CHUNKS = 32;
const CHUNK_DELAY_MS = 10;
const MESSAGE = 'Please write to Jane Doe at jane.doe@example.com about the Berlin office, reference ';

type TargetName = 'direct' | 'chat/stream' | '/v1';
const TARGETS: TargetName[] = ['direct', 'chat/stream', '/v1'];

interface Endpoints {
  mock: string;
  base: string;
  jwt: string;
  apiKey: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const pct = (values: number[], p: number): number => percentile([...values].sort((a, b) => a - b), p);
const fmt = (ms: number): string => `${ms.toFixed(2).padStart(8)} ms`;

/** One streamed answer through a target: the times (this process's clock) at which each text piece arrived. */
async function stream(target: TargetName, endpoints: Endpoints): Promise<number[]> {
  const received: number[] = [];
  const message = `${MESSAGE}${randomUUID()}`;
  const onOpenAiChunk = (_event: string, data: string) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }>; error?: unknown };
    if (chunk.error) throw new Error(`error chunk: ${data}`);
    if (chunk.choices?.[0]?.delta?.content) received.push(performance.now());
  };
  let status: number;
  switch (target) {
    case 'direct':
      status = await postSse(agent, `${endpoints.mock}/v1/chat/completions`, { authorization: 'Bearer bench' }, JSON.stringify({ model: 'mock-model', stream: true, messages: [{ role: 'user', content: message }] }), onOpenAiChunk);
      break;
    case 'chat/stream':
      status = await postSse(agent, `${endpoints.base}/api/v1/chat/stream`, { authorization: `Bearer ${endpoints.jwt}` }, JSON.stringify({ message, model: 'openai/mock-model' }), (event) => {
        if (event === 'token') received.push(performance.now());
      });
      break;
    case '/v1':
      status = await postSse(
        agent,
        `${endpoints.base}/v1/chat/completions`,
        { authorization: `Bearer ${endpoints.apiKey}` },
        JSON.stringify({ model: 'openai/mock-model', stream: true, messages: [{ role: 'user', content: message }] }),
        onOpenAiChunk,
      );
      break;
  }
  if (status !== 200) throw new Error(`${target} answered ${status}`);
  return received;
}

async function firstTokenRounds(mock: MockLlm, endpoints: Endpoints): Promise<Record<TargetName, number[]>> {
  mock.setDefault(textReply(['Hello.']));
  const samples: Record<TargetName, number[]> = { direct: [], 'chat/stream': [], '/v1': [] };
  for (let round = 0; round < WARMUP + TTFT_ROUNDS; round += 1) {
    for (const target of TARGETS) {
      const started = performance.now();
      const received = await stream(target, endpoints);
      if (received.length === 0) throw new Error(`${target}: no text`);
      if (round >= WARMUP) samples[target].push(received[0]! - started);
    }
  }
  return samples;
}

async function chunkRounds(mock: MockLlm, endpoints: Endpoints): Promise<Record<TargetName, number[]>> {
  mock.setDefault(textReply(Array.from({ length: CHUNKS }, (_, i) => `tok${i} `), { chunkDelayMs: CHUNK_DELAY_MS }));
  const samples: Record<TargetName, number[]> = { direct: [], 'chat/stream': [], '/v1': [] };
  for (let round = 0; round < 1 + STREAMS; round += 1) {
    for (const target of TARGETS) {
      mock.requests.length = 0;
      const received = await stream(target, endpoints);
      const written = mock.chatRequests()[0]?.outputWrittenAt ?? [];
      if (received.length !== CHUNKS || written.length !== CHUNKS) throw new Error(`${target}: ${received.length} chunks read, ${written.length} written`);
      if (round >= 1) for (let i = 0; i < CHUNKS; i += 1) samples[target].push(received[i]! - written[i]!);
    }
  }
  return samples;
}

function report(title: string, samples: Record<TargetName, number[]>): { v1Added: number; chatAdded: number } {
  const p50 = (target: TargetName) => pct(samples[target], 50);
  const p99 = (target: TargetName) => pct(samples[target], 99);
  console.log(`\n${title}`);
  for (const target of TARGETS) {
    const added = target === 'direct' ? '  (the ceiling)' : `  added p50 ${fmt(p50(target) - p50('direct'))}  p99 ${fmt(p99(target) - p99('direct'))}`;
    console.log(`  ${target.padEnd(12)} p50 ${fmt(p50(target))}  p99 ${fmt(p99(target))}${added}   (n=${samples[target].length})`);
  }
  const v1Added = p50('/v1') - p50('direct');
  const chatAdded = p50('chat/stream') - p50('direct');
  console.log(`  /v1 ÷ chat/stream (p50): ${(p50('/v1') / p50('chat/stream')).toFixed(2)}×; added over direct, /v1 ÷ chat/stream: ${(v1Added / Math.max(chatAdded, 0.001)).toFixed(2)}×`);
  console.log(`  /v1 ÷ direct (p50): ${(p50('/v1') / p50('direct')).toFixed(2)}×; chat/stream ÷ direct: ${(p50('chat/stream') / p50('direct')).toFixed(2)}×`);
  return { v1Added, chatAdded };
}

async function json(url: string, init: RequestInit): Promise<Record<string, unknown>> {
  const response = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(init.headers ?? {}) } });
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const mock = await startMockLlm({ models: ['mock-model'] });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-openai-bench-'));
  const port = await freePort();
  const serverArgs = productionServerArgs();
  const env = benchServerEnv({ port, dataDir, mockUrl: mock.url });

  const server = spawn(process.execPath, serverArgs, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => server.on('exit', resolve));
  try {
    const base = `http://127.0.0.1:${port}`;
    await Promise.race([waitForHttp(`${base}/health/ready`, 300_000), exited.then((code) => Promise.reject(new Error(`the server exited (${code})`)))]);
    const username = 'bench_analyst';
    const password = `Bench-${randomUUID()}`;
    await json(`${base}/api/v1/auth/register`, { method: 'POST', body: JSON.stringify({ username, email: `${username}@example.test`, password }) });
    const jwt = String((await json(`${base}/api/v1/auth/login`, { method: 'POST', body: JSON.stringify({ username, password }) })).access_token);
    const key = await json(`${base}/api/v1/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` }, body: JSON.stringify({ name: 'bench', scopes: ['chat'] }) });
    const endpoints: Endpoints = { mock: mock.url, base, jwt, apiKey: String(key.key) };

    console.log(`node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; server: node ${serverArgs.join(' ')}`);
    const ttft = report(`Time to first token, one-chunk answer (${TTFT_ROUNDS} rounds per client, in rotation)`, await firstTokenRounds(mock, endpoints));
    const chunks = report(`Per-chunk delivery, mock wrote → client had it (${STREAMS} streams × ${CHUNKS} chunks ${CHUNK_DELAY_MS} ms apart)`, await chunkRounds(mock, endpoints));
    console.log('\nTargets:');
    console.log(`  first token: /v1 adds ${ttft.v1Added.toFixed(2)} ms p50 (< 5 ms: ${ttft.v1Added < 5 ? 'yes' : 'no'}); no worse than chat/stream (${ttft.chatAdded.toFixed(2)} ms): ${ttft.v1Added <= ttft.chatAdded ? 'yes' : 'no'}`);
    console.log(`  per chunk:   /v1 adds ${chunks.v1Added.toFixed(2)} ms p50 (< 5 ms: ${chunks.v1Added < 5 ? 'yes' : 'no'}); no worse than chat/stream (${chunks.chatAdded.toFixed(2)} ms): ${chunks.v1Added <= chunks.chatAdded + 0.5 ? 'yes' : 'no'}`);
    console.log(`[load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}]`);
  } finally {
    server.kill('SIGTERM');
    await exited;
    await mock.close();
    agent.destroy();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

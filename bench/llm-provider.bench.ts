/**
 * Latency the provider layer adds on top of the wire: the mock LLM streams 64 chunks 20 ms apart (OpenAI chat
 * completions SSE); the same run reads it once with a bare node:http client + SSE parser (the baseline) and once
 * through `streamChat` (AI SDK provider + normalization + watchdog), alternating. For every chunk the mock logs when
 * it wrote it, so each client's delivery delay is measured per chunk, not inferred from gaps.
 *
 *   npx tsx bench/llm-provider.bench.ts [iterations=12]
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { createProviderRegistry, routeSdkWarnings } from '../src/modules/llm/providers/index.js';
import { startMockLlm, textReply, type MockLlm } from '../test/mock-llm/server.js';

const CHUNKS = 64;
const CHUNK_DELAY_MS = 20;
const WARMUP = 2;
const iterations = Number(process.argv[2] ?? 12);

interface Sample {
  /** Request start to the first token in the client's hands. */
  ttftMs: number;
  /** Per chunk: mock wrote it → the client had it. */
  deliveryMs: number[];
  /** Per chunk after the first: time between two tokens in the client's hands. */
  gapMs: number[];
}

const script = () =>
  textReply(
    Array.from({ length: CHUNKS }, (_, i) => `tok${i} `),
    { chunkDelayMs: CHUNK_DELAY_MS },
  );

// The baseline reads the stream with node:http over a keep-alive agent, the leanest client Node has: with the global
// fetch as the baseline (about 1.8 ms more to the first token here), part of the layer's own cost would be hidden.
const agent = new http.Agent({ keepAlive: true });

function rawClient(mock: MockLlm): Promise<number[]> {
  const received: number[] = [];
  const body = JSON.stringify({ model: 'm1', stream: true, messages: [{ role: 'user', content: 'go' }] });
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${mock.url}/v1/chat/completions`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: 'Bearer bench', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => {
          buffer += text;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
            const chunk = JSON.parse(event.slice(6)) as { choices: Array<{ delta: { content?: string } }> };
            if (chunk.choices[0]?.delta.content) received.push(performance.now());
          }
        });
        response.on('end', () => resolve(received));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function layerClient(registry: ReturnType<typeof createProviderRegistry>): Promise<number[]> {
  const received: number[] = [];
  for await (const event of registry.streamChat({ modelId: 'openai/m1', messages: [{ role: 'user', content: 'go' }] })) {
    if (event.type === 'text') received.push(performance.now());
    if (event.type === 'error') throw event.error;
  }
  return received;
}

async function measure(mock: MockLlm, client: () => Promise<number[]>): Promise<Sample> {
  mock.requests.length = 0;
  mock.script(script());
  const started = performance.now();
  const received = await client();
  const written = mock.requests[0].outputWrittenAt;
  if (received.length !== CHUNKS || written.length !== CHUNKS) {
    throw new Error(`expected ${CHUNKS} chunks, got ${received.length} received / ${written.length} written`);
  }
  return {
    ttftMs: received[0] - started,
    deliveryMs: received.map((at, i) => at - written[i]),
    gapMs: received.slice(1).map((at, i) => at - received[i]),
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const fmt = (ms: number): string => `${ms.toFixed(2).padStart(7)} ms`;

async function main(): Promise<void> {
  routeSdkWarnings(false);
  const mock = await startMockLlm({ models: ['m1'] });
  const registry = createProviderRegistry({
    openaiBaseUrl: `${mock.url}/v1`,
    openaiApiKey: 'bench',
    openaiLocal: true,
    requestTimeoutMs: 10_000,
  });
  const raw: Sample[] = [];
  const layer: Sample[] = [];
  const started = performance.now();
  try {
    for (let i = 0; i < WARMUP + iterations; i += 1) {
      // Alternate the order so neither client always runs on a warmer process.
      const first = i % 2 === 0;
      const a = await measure(mock, first ? () => rawClient(mock) : () => layerClient(registry));
      const b = await measure(mock, first ? () => layerClient(registry) : () => rawClient(mock));
      if (i < WARMUP) continue;
      raw.push(first ? a : b);
      layer.push(first ? b : a);
    }
  } finally {
    agent.destroy();
    await mock.close();
  }

  const rows: Array<[string, (s: Sample[]) => number[]]> = [
    ['time to first token', (s) => s.map((x) => x.ttftMs)],
    ['chunk delivery delay', (s) => s.flatMap((x) => x.deliveryMs)],
    ['inter-chunk gap', (s) => s.flatMap((x) => x.gapMs)],
  ];
  console.log(
    `llm-provider: ${iterations} streams per client, ${CHUNKS} chunks ${CHUNK_DELAY_MS} ms apart, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(`${'metric'.padEnd(22)} ${'raw p50'.padStart(10)} ${'layer p50'.padStart(10)} ${'added p50'.padStart(10)}` +
    ` ${'raw p99'.padStart(10)} ${'layer p99'.padStart(10)} ${'added p99'.padStart(10)}`);
  for (const [name, pick] of rows) {
    const r = pick(raw);
    const l = pick(layer);
    const [r50, l50, r99, l99] = [percentile(r, 50), percentile(l, 50), percentile(r, 99), percentile(l, 99)];
    console.log(`${name.padEnd(22)} ${fmt(r50)} ${fmt(l50)} ${fmt(l50 - r50)} ${fmt(r99)} ${fmt(l99)} ${fmt(l99 - r99)}`);
  }
  // Paired per stream: the layer's first token against the raw client's on the neighbouring stream.
  const addedTtft = layer.map((sample, i) => sample.ttftMs - raw[i].ttftMs);
  console.log(
    `added time to first token, paired: p50 ${fmt(percentile(addedTtft, 50))}, p99 ${fmt(percentile(addedTtft, 99))}` +
      ` (targets for the whole gateway: p50 < 5 ms, p99 < 20 ms; added gap p99 < 2 ms)`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

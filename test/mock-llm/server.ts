import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MockFinishReason, MockResponse, MockStep } from './script.js';
import {
  anthropicComplete,
  anthropicStream,
  defaultErrorMessage,
  errorBody,
  geminiComplete,
  geminiStream,
  ollamaComplete,
  ollamaStream,
  openaiComplete,
  openaiStream,
  type CompleteReply,
  type StreamEncoder,
  type WireFormat,
  type WireToolCall,
  type WireUsage,
} from './wire.js';

export type { MockFinishReason, MockResponse, MockStep } from './script.js';
export { splitInto, textReply, toolCallReply } from './script.js';
export type { WireFormat } from './wire.js';

/**
 * A scripted LLM server for tests: a real HTTP server on 127.0.0.1 that speaks the OpenAI, Ollama, Anthropic and
 * Gemini wire formats, so tests go through the real provider clients. Base URLs: OpenAI and Anthropic `${url}/v1`,
 * Ollama `${url}` (native `/api/...`), Gemini `${url}/v1beta`.
 */

export interface RecordedRequest {
  /** Which provider's API was called; null for an unknown path. */
  readonly wire: WireFormat | null;
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body, or null when there was none. */
  readonly body: unknown;
  /** Whether a streamed chat response was asked for. */
  readonly stream: boolean;
  /** `performance.now()` when the request arrived. */
  readonly receivedAt: number;
  /** True when the client closed the connection before the response was complete. */
  readonly aborted: boolean;
  /** `performance.now()` when the client closed the connection early. */
  readonly abortedAt: number | null;
  /** `performance.now()` when the response ended or the connection closed, whichever came first. */
  readonly closedAt: number | null;
  /** Resolves once the response has ended or the connection has closed. */
  readonly closed: Promise<void>;
  /** `performance.now()` of each streamed text or tool-call frame as it was written. */
  readonly outputWrittenAt: number[];
}

/** How the model-listing endpoints (`/v1/models`, `/api/tags`, `/v1beta/models`, `/api/version`) answer. */
export interface MockDiscovery {
  models: string[];
  /** Answer with this HTTP error status instead. */
  status: number | null;
  /** Never answer. */
  hang: boolean;
}

/** How the embedding endpoints (`POST /v1/embeddings`, `/api/embed`) answer: deterministic vectors (mockEmbedding). */
export interface MockEmbeddings {
  dimensions: number;
  /** Answer with this HTTP error status instead. */
  status: number | null;
}

export interface MockLlm {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly embeddings: MockEmbeddings;
  /** Embedding requests received so far. */
  embeddingRequests(): RecordedRequest[];
  /** Every request received, in order of arrival. */
  readonly requests: RecordedRequest[];
  readonly discovery: MockDiscovery;
  /** Queue responses; each chat request, whatever its provider, takes the next one. */
  script(...responses: Array<MockResponse | MockStep[]>): void;
  /** The response used once the queue is empty (null: answer 500 so a missing script is noticed). */
  setDefault(response: MockResponse | null): void;
  /** Responses still queued. */
  readonly remaining: number;
  /** Chat requests received so far (discovery requests excluded). */
  chatRequests(): RecordedRequest[];
  close(): Promise<void>;
}

/**
 * A deterministic embedding: hashed words and character trigrams, signed, L2-normalised. Texts that share words
 * (or word pieces) are near in cosine, so retrieval over them behaves like a small real model, and the same text
 * always gets the same vector.
 */
export function mockEmbedding(text: string, dimensions: number): number[] {
  const out = new Array<number>(dimensions).fill(0);
  const add = (feature: string, weight: number) => {
    let hash = 0x811c9dc5;
    for (let i = 0; i < feature.length; i += 1) hash = Math.imul(hash ^ feature.charCodeAt(i), 0x01000193) >>> 0;
    out[hash % dimensions]! += (hash & 0x80000000 ? -1 : 1) * weight;
  };
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    add(`w:${word}`, 1);
    const padded = `^${word}$`;
    for (let i = 0; i + 3 <= padded.length; i += 1) add(`t:${padded.slice(i, i + 3)}`, 0.35);
  }
  const norm = Math.hypot(...out);
  if (norm === 0) {
    out[0] = 1;
    return out;
  }
  return out.map((x) => x / norm);
}

export async function startMockLlm(options: { models?: string[]; embeddingDimensions?: number } = {}): Promise<MockLlm> {
  const embeddings: MockEmbeddings = { dimensions: options.embeddingDimensions ?? 64, status: null };
  const queue: MockResponse[] = [];
  let fallback: MockResponse | null = null;
  const requests: RecordedRequest[] = [];
  const discovery: MockDiscovery = { models: options.models ?? ['mock-model'], status: null, hang: false };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: String(error) } }));
      } else {
        res.destroy();
      }
    });
  });

  function nextScript(): MockResponse {
    return (
      queue.shift() ??
      fallback ?? { steps: [{ type: 'error', status: 500, message: 'mock-llm: no scripted response left' }] }
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://mock');
    // Watch for the connection closing from the first moment, even while the body is still being read.
    const tracker = trackClose(res);
    const raw = await readBody(req);
    let body: unknown = null;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'mock-llm: body is not JSON' } }));
        return;
      }
    }
    const route = resolveRoute(req.method ?? 'GET', url.pathname, req.headers, body);
    const record = recordRequest(req, tracker, url, body, route);
    requests.push(record);

    if (route.kind === 'unknown') {
      sendJson(res, 404, { error: { message: `mock-llm: no route for ${req.method} ${url.pathname}` } });
      return;
    }
    if (route.kind === 'discovery') {
      await answerDiscovery(res, record, route.wire, route.endpoint);
      return;
    }
    if (route.kind === 'embeddings') {
      answerEmbeddings(res, route.wire, body);
      return;
    }
    const presentedKey = presentedApiKey(route.wire, req.headers, url);
    await play(nextScript(), {
      wire: route.wire,
      model: route.model,
      stream: route.stream,
      includeUsage: route.includeUsage,
      defaultInputTokens: estimateTokens(body),
      presentedKey,
      res,
      record,
    });
  }

  function answerEmbeddings(res: ServerResponse, wire: 'openai' | 'ollama', body: unknown): void {
    if (embeddings.status !== null) {
      sendJson(res, embeddings.status, errorBody(wire, embeddings.status, defaultErrorMessage(wire, embeddings.status, undefined)));
      return;
    }
    const fields = isRecord(body) ? body : {};
    const inputs = Array.isArray(fields.input) ? fields.input.map(String) : [String(fields.input ?? '')];
    const model = typeof fields.model === 'string' ? fields.model : 'unknown';
    const vectors = inputs.map((text) => mockEmbedding(text, embeddings.dimensions));
    const tokens = inputs.reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
    if (wire === 'openai') {
      sendJson(res, 200, { object: 'list', data: vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })), model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
    } else {
      sendJson(res, 200, { model, embeddings: vectors, total_duration: 1000, load_duration: 0, prompt_eval_count: tokens });
    }
  }

  async function answerDiscovery(
    res: ServerResponse,
    record: RecordedRequest,
    wire: WireFormat,
    endpoint: 'models' | 'version',
  ): Promise<void> {
    if (discovery.hang) {
      await record.closed;
      return;
    }
    if (discovery.status !== null) {
      const message = defaultErrorMessage(wire, discovery.status, undefined);
      sendJson(res, discovery.status, errorBody(wire, discovery.status, message));
      return;
    }
    const models = discovery.models;
    const created = Math.floor(Date.now() / 1000);
    if (endpoint === 'version') {
      sendJson(res, 200, { version: '0.12.6' });
      return;
    }
    switch (wire) {
      case 'openai':
        sendJson(res, 200, {
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', created, owned_by: 'mock-llm' })),
        });
        return;
      case 'anthropic':
        sendJson(res, 200, {
          data: models.map((id) => ({ type: 'model', id, display_name: id, created_at: new Date().toISOString() })),
          has_more: false,
          first_id: models[0] ?? null,
          last_id: models[models.length - 1] ?? null,
        });
        return;
      case 'ollama':
        sendJson(res, 200, {
          models: models.map((name) => ({
            name,
            model: name,
            modified_at: new Date().toISOString(),
            size: 4_920_753_328,
            digest: 'a'.repeat(64),
            details: { format: 'gguf', family: 'llama', parameter_size: '8.0B', quantization_level: 'Q4_K_M' },
          })),
        });
        return;
      case 'gemini':
        sendJson(res, 200, {
          models: models.map((id) => ({
            name: `models/${id}`,
            displayName: id,
            inputTokenLimit: 1_048_576,
            outputTokenLimit: 8192,
            supportedGenerationMethods: ['generateContent', 'countTokens'],
          })),
        });
        return;
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    embeddings,
    embeddingRequests: () => requests.filter((request) => request.path === '/v1/embeddings' || request.path === '/api/embed'),
    requests,
    discovery,
    script(...responses) {
      for (const response of responses) queue.push(Array.isArray(response) ? { steps: response } : response);
    },
    setDefault(response) {
      fallback = response;
    },
    get remaining() {
      return queue.length;
    },
    chatRequests: () => requests.filter((request) => request.method === 'POST' && request.path !== '/v1/embeddings' && request.path !== '/api/embed'),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (just released), to stand for an unreachable provider. */
export function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createTcpServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

// Routing -------------------------------------------------------------------------------------------------------------

type Route =
  | { kind: 'chat'; wire: WireFormat; model: string; stream: boolean; includeUsage: boolean }
  | { kind: 'discovery'; wire: WireFormat; endpoint: 'models' | 'version' }
  | { kind: 'embeddings'; wire: 'openai' | 'ollama' }
  | { kind: 'unknown'; wire: null };

const geminiChatPath = /^\/v1beta\/models\/([^/:]+):(streamGenerateContent|generateContent)$/;

function resolveRoute(method: string, path: string, headers: IncomingHttpHeaders, body: unknown): Route {
  const fields = isRecord(body) ? body : {};
  const model = typeof fields.model === 'string' ? fields.model : 'unknown';
  if (method === 'GET') {
    // OpenAI and Anthropic share the path; Anthropic's client always sends its version header.
    if (path === '/v1/models') {
      return { kind: 'discovery', wire: headers['anthropic-version'] ? 'anthropic' : 'openai', endpoint: 'models' };
    }
    if (path === '/api/tags') return { kind: 'discovery', wire: 'ollama', endpoint: 'models' };
    if (path === '/api/version') return { kind: 'discovery', wire: 'ollama', endpoint: 'version' };
    if (path === '/v1beta/models') return { kind: 'discovery', wire: 'gemini', endpoint: 'models' };
  }
  if (method === 'POST') {
    if (path === '/v1/embeddings') return { kind: 'embeddings', wire: 'openai' };
    if (path === '/api/embed') return { kind: 'embeddings', wire: 'ollama' };
    if (path === '/v1/chat/completions') {
      const options = isRecord(fields.stream_options) ? fields.stream_options : {};
      return {
        kind: 'chat',
        wire: 'openai',
        model,
        stream: fields.stream === true,
        includeUsage: options.include_usage === true,
      };
    }
    // Ollama streams unless told not to.
    if (path === '/api/chat') {
      return { kind: 'chat', wire: 'ollama', model, stream: fields.stream !== false, includeUsage: true };
    }
    if (path === '/v1/messages') {
      return { kind: 'chat', wire: 'anthropic', model, stream: fields.stream === true, includeUsage: true };
    }
    const gemini = geminiChatPath.exec(path);
    if (gemini) {
      return {
        kind: 'chat',
        wire: 'gemini',
        model: gemini[1],
        stream: gemini[2] === 'streamGenerateContent',
        includeUsage: true,
      };
    }
  }
  return { kind: 'unknown', wire: null };
}

interface CloseTracker {
  aborted: boolean;
  abortedAt: number | null;
  closedAt: number | null;
  closed: Promise<void>;
}

function trackClose(res: ServerResponse): CloseTracker {
  let resolveClosed: () => void = () => undefined;
  const tracker: CloseTracker = {
    aborted: false,
    abortedAt: null,
    closedAt: null,
    closed: new Promise<void>((resolve) => {
      resolveClosed = resolve;
    }),
  };
  res.once('close', () => {
    const now = performance.now();
    tracker.closedAt = now;
    if (!res.writableFinished) {
      tracker.aborted = true;
      tracker.abortedAt = now;
    }
    resolveClosed();
  });
  return tracker;
}

/** The record reads the close state live from the tracker, so tests see it change. */
function recordRequest(
  req: IncomingMessage,
  tracker: CloseTracker,
  url: URL,
  body: unknown,
  route: Route,
): RecordedRequest {
  return {
    wire: route.wire,
    method: req.method ?? 'GET',
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: req.headers,
    body,
    stream: route.kind === 'chat' && route.stream,
    receivedAt: performance.now(),
    get aborted() {
      return tracker.aborted;
    },
    get abortedAt() {
      return tracker.abortedAt;
    },
    get closedAt() {
      return tracker.closedAt;
    },
    closed: tracker.closed,
    outputWrittenAt: [],
  };
}

function presentedApiKey(wire: WireFormat, headers: IncomingHttpHeaders, url: URL): string | undefined {
  switch (wire) {
    case 'openai': {
      const authorization = headers.authorization;
      return authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
    }
    case 'anthropic':
      return firstHeader(headers['x-api-key']);
    case 'gemini':
      return firstHeader(headers['x-goog-api-key']) ?? url.searchParams.get('key') ?? undefined;
    case 'ollama':
      return undefined;
  }
}

// Playing a script ----------------------------------------------------------------------------------------------------

interface PlayContext {
  wire: WireFormat;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  defaultInputTokens: number;
  presentedKey: string | undefined;
  res: ServerResponse;
  record: RecordedRequest;
}

const toolIdPrefix: Record<WireFormat, string> = { openai: 'call_', ollama: 'call_', anthropic: 'toolu_', gemini: 'fc_' };

async function play(script: MockResponse, ctx: PlayContext): Promise<void> {
  const { res, record } = ctx;
  const isClosed = (): boolean => record.closedAt !== null;
  const chunkDelayMs = script.chunkDelayMs ?? 0;
  // Known from the start, since some formats (Anthropic's message_start) report input tokens first.
  const usageStep = script.steps.find((step) => step.type === 'usage');
  let usage: WireUsage | null = usageStep
    ? { input_tokens: usageStep.input_tokens, output_tokens: usageStep.output_tokens }
    : null;
  let outputs = 0;
  let toolCalls = 0;
  const hasToolCall = script.steps.some((step) => step.type === 'tool_call');
  const finishReason: MockFinishReason = script.finishReason ?? (hasToolCall ? 'tool_calls' : 'stop');
  const defaultUsage = (): WireUsage => ({ input_tokens: ctx.defaultInputTokens, output_tokens: Math.max(1, outputs) });
  const toWireToolCall = (step: Extract<MockStep, { type: 'tool_call' }>): WireToolCall => {
    toolCalls += 1;
    return {
      id: step.id ?? `${toolIdPrefix[ctx.wire]}${toolCalls}${Math.random().toString(36).slice(2, 8)}`,
      name: step.name,
      args: step.args,
      fragments: step.fragments ?? 3,
    };
  };

  /** The steps that act on timing, the connection or the usage: the same whether the answer streams or not. */
  const playControl = async (step: MockStep): Promise<'played' | 'ended' | 'output'> => {
    switch (step.type) {
      case 'delay':
        await wait(step.ms, record.closed);
        return 'played';
      case 'hang':
        await record.closed;
        return 'ended';
      case 'drop':
        res.destroy();
        return 'ended';
      case 'usage':
        usage = { input_tokens: step.input_tokens, output_tokens: step.output_tokens };
        return 'played';
      default:
        return 'output';
    }
  };

  if (!ctx.stream) {
    // Non-streamed: delays add up before one complete answer.
    const reply: CompleteReply = { text: '', toolCalls: [], reason: finishReason, usage: defaultUsage() };
    for (const step of script.steps) {
      if (isClosed()) return;
      const control = await playControl(step);
      if (control === 'ended') return;
      if (control === 'played') continue;
      switch (step.type) {
        case 'error':
          sendError(ctx, step.status, step.message);
          return;
        case 'text':
          outputs += 1;
          reply.text += step.text;
          break;
        case 'tool_call':
          outputs += 1;
          reply.toolCalls.push(toWireToolCall(step));
          break;
        case 'headers':
          break;
      }
    }
    reply.usage = usage ?? defaultUsage();
    sendJson(res, 200, completeBody(ctx, reply));
    return;
  }

  const encoder = streamEncoder(ctx, () => usage?.input_tokens ?? ctx.defaultInputTokens);
  let started = false;
  const write = (frames: string[]): void => {
    for (const frame of frames) res.write(frame);
  };
  const start = (): void => {
    if (started) return;
    started = true;
    res.writeHead(200, {
      'content-type': encoder.contentType,
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.flushHeaders();
    write(encoder.start());
  };
  // Every output frame after the first is spaced by the chunk delay, like tokens from a real model.
  let framesOut = 0;
  const emit = async (frames: string[]): Promise<boolean> => {
    for (const frame of frames) {
      if (framesOut > 0 && chunkDelayMs > 0) await wait(chunkDelayMs, record.closed);
      if (isClosed()) return false;
      res.write(frame);
      record.outputWrittenAt.push(performance.now());
      framesOut += 1;
    }
    return true;
  };

  for (const step of script.steps) {
    if (isClosed()) return;
    const control = await playControl(step);
    if (control === 'ended') return;
    if (control === 'played') continue;
    switch (step.type) {
      case 'headers':
        start();
        break;
      case 'error':
        if (!started) {
          sendError(ctx, step.status, step.message);
        } else {
          write(encoder.error(step.message ?? defaultErrorMessage(ctx.wire, step.status, undefined)));
          res.end();
        }
        return;
      case 'text':
        start();
        if (!(await emit(encoder.text(step.text)))) return;
        outputs += 1;
        break;
      case 'tool_call':
        start();
        if (!(await emit(encoder.toolCall(toWireToolCall(step))))) return;
        outputs += 1;
        break;
    }
  }
  if (isClosed()) return;
  start();
  write(encoder.finish(finishReason, usage ?? defaultUsage()));
  res.end();
}

function streamEncoder(ctx: PlayContext, inputTokens: () => number): StreamEncoder {
  switch (ctx.wire) {
    case 'openai':
      return openaiStream(ctx.model, ctx.includeUsage);
    case 'ollama':
      return ollamaStream(ctx.model);
    case 'anthropic':
      return anthropicStream(ctx.model, inputTokens);
    case 'gemini':
      return geminiStream(ctx.model);
  }
}

function completeBody(ctx: PlayContext, reply: CompleteReply): unknown {
  switch (ctx.wire) {
    case 'openai':
      return openaiComplete(ctx.model, reply);
    case 'ollama':
      return ollamaComplete(ctx.model, reply);
    case 'anthropic':
      return anthropicComplete(ctx.model, reply);
    case 'gemini':
      return geminiComplete(ctx.model, reply);
  }
}

function sendError(ctx: PlayContext, status: number, message: string | undefined): void {
  const text = message ?? defaultErrorMessage(ctx.wire, status, ctx.presentedKey);
  sendJson(ctx.res, status, errorBody(ctx.wire, status, text));
}

// Small helpers -------------------------------------------------------------------------------------------------------

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Resolves after `ms`, or as soon as `cancel` settles (the client went away). */
function wait(ms: number, cancel: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void cancel.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A rough, deterministic prompt-size estimate used when a script reports no usage. */
function estimateTokens(body: unknown): number {
  if (!isRecord(body)) return 1;
  const prompt = body.messages ?? body.contents ?? body.prompt ?? '';
  return Math.max(1, Math.ceil(JSON.stringify(prompt).length / 4));
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

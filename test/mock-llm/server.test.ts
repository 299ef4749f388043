import { generateText } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createProviderRegistry, routeSdkWarnings } from '../../src/modules/llm/providers/index.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from './server.js';

let mock: MockLlm;

beforeAll(async () => {
  routeSdkWarnings(false);
  mock = await startMockLlm({ models: ['m1'] });
});

afterEach(() => {
  mock.requests.length = 0;
  mock.setDefault(null);
});

afterAll(async () => {
  await mock.close();
});

const post = (path: string, body: unknown, signal?: AbortSignal): Promise<Response> =>
  fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
    body: JSON.stringify(body),
    signal,
  });

/** The JSON payloads of an SSE body's `data:` lines. */
function sseData(text: string): unknown[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: ') && line !== 'data: [DONE]')
    .map((line) => JSON.parse(line.slice('data: '.length)) as unknown);
}

describe('OpenAI wire format', () => {
  it('streams tool-call deltas with index, id, name, then argument fragments, then [DONE]', async () => {
    mock.script(toolCallReply('lookup', { id: 'C-1', deep: { a: [1, 2] } }, { id: 'call_1', fragments: 4 }));
    const response = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: [] });
    const text = await response.text();

    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    const deltas = sseData(text).flatMap((chunk) => {
      const choices = (chunk as { choices: Array<{ delta: { tool_calls?: unknown[] } }> }).choices;
      return choices.flatMap((choice) => choice.delta.tool_calls ?? []);
    }) as Array<{ index: number; id?: string; function: { name?: string; arguments: string } }>;
    expect(deltas[0]).toMatchObject({
      index: 0,
      id: 'call_1',
      type: 'function',
      function: { name: 'lookup', arguments: '' },
    });
    const fragments = deltas.slice(1).map((delta) => delta.function.arguments);
    expect(fragments).toHaveLength(4);
    expect(JSON.parse(fragments.join(''))).toEqual({ id: 'C-1', deep: { a: [1, 2] } });
    // No usage chunk unless the client asks for one.
    expect(sseData(text).some((chunk) => (chunk as { usage?: unknown }).usage !== undefined)).toBe(false);
  });

  it('adds the usage chunk when stream_options.include_usage is set', async () => {
    mock.script(textReply(['a'], { usage: [11, 1] }));
    const response = await post('/v1/chat/completions', {
      model: 'm1',
      stream: true,
      stream_options: { include_usage: true },
      messages: [],
    });
    const chunks = sseData(await response.text()) as Array<{ choices: unknown[]; usage?: unknown }>;
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 11, completion_tokens: 1, total_tokens: 12 },
    });
  });

  it('answers non-streamed requests, which the real clients parse', async () => {
    const registry = createProviderRegistry({
      ollamaBaseUrl: mock.url,
      openaiBaseUrl: mock.url,
      openaiLocal: true,
      anthropicBaseUrl: mock.url,
      anthropicApiKey: 'k',
      requestTimeoutMs: 2000,
    });
    for (const provider of ['openai', 'ollama', 'anthropic']) {
      mock.script(textReply(['Hello', ' there'], { usage: [5, 2] }));
      const result = await generateText({ model: registry.getLanguageModel(`${provider}/m1`), prompt: 'hi', maxRetries: 0 });
      expect(result.text).toBe('Hello there');
      expect(result.usage).toMatchObject({ inputTokens: 5, outputTokens: 2 });
    }
    expect(mock.chatRequests().map((request) => request.stream)).toEqual([false, false, false]);
  });
});

describe('Ollama wire format', () => {
  it('streams NDJSON deltas and a final done line with token counts', async () => {
    mock.script(textReply(['Hi', '!'], { usage: [9, 2] }));
    const response = await post('/api/chat', { model: 'm1', messages: [] });
    const lines = (await response.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);

    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    expect(lines.map((line) => (line.message as { content: string }).content)).toEqual(['Hi', '!', '']);
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop', prompt_eval_count: 9, eval_count: 2 });
  });

  it('lists models and its version', async () => {
    const tags = (await (await fetch(`${mock.url}/api/tags`)).json()) as { models: Array<{ name: string }> };
    const version = (await (await fetch(`${mock.url}/api/version`)).json()) as { version: string };
    expect(tags.models.map((model) => model.name)).toEqual(['m1']);
    expect(version.version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('Anthropic wire format', () => {
  it('sends the named events in order, with input_json_delta for a tool call', async () => {
    mock.script(toolCallReply('lookup', { q: 'x' }, { text: ['Checking'], fragments: 2 }));
    const response = await post('/v1/messages', { model: 'm1', stream: true, messages: [] });
    const events = (await response.text()).match(/^event: (\w+)$/gm)?.map((line) => line.slice('event: '.length));

    expect(events).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
  });
});

describe('scripting and recording', () => {
  it('answers 500 when no response is scripted, and uses the default once set', async () => {
    expect((await post('/v1/chat/completions', { model: 'm1', messages: [] })).status).toBe(500);
    mock.setDefault(textReply(['again']));
    for (let i = 0; i < 2; i += 1) {
      const body = (await (await post('/v1/chat/completions', { model: 'm1', messages: [] })).json()) as {
        choices: Array<{ message: { content: string } }>;
      };
      expect(body.choices[0].message.content).toBe('again');
    }
  });

  it('records the request and whether the client went away early', async () => {
    mock.script([{ type: 'headers' }, { type: 'hang' }]);
    const controller = new AbortController();
    const body = { model: 'm1', stream: true, messages: [{ role: 'user' }] };
    const response = await post('/v1/chat/completions', body, controller.signal);
    expect(response.status).toBe(200);
    controller.abort();
    const [request] = mock.requests;
    await request.closed;

    expect(request).toMatchObject({ wire: 'openai', method: 'POST', path: '/v1/chat/completions', stream: true });
    expect(request.headers.authorization).toBe('Bearer k');
    expect(request.body).toEqual(body);
    expect(request.aborted).toBe(true);
    expect(request.abortedAt).toBeGreaterThanOrEqual(request.receivedAt);
  });

  it('spaces streamed chunks by the scripted delay and logs when each was written', async () => {
    mock.script(textReply(['a', 'b', 'c'], { chunkDelayMs: 30 }));
    await (await post('/v1/chat/completions', { model: 'm1', stream: true, messages: [] })).text();
    const [request] = mock.requests;

    expect(request.aborted).toBe(false);
    expect(request.outputWrittenAt).toHaveLength(3);
    const gaps = request.outputWrittenAt.slice(1).map((at, i) => at - request.outputWrittenAt[i]);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(25);
  });
});

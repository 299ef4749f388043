import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mockProvidersConfig } from '../../../../test/mock-llm/providers.js';
import { startMockLlm, textReply, toolCallReply, unusedPort, type MockLlm } from '../../../../test/mock-llm/server.js';
import {
  createProviderRegistry,
  ProviderNotConfiguredError,
  ProviderRequestError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  routeSdkWarnings,
  type ChatStreamEvent,
  type ChatToolDefinition,
  type LlmProvidersConfig,
  type ProviderName,
  type ProviderRegistry,
} from './index.js';

const OPENAI_KEY = 'sk-test-0123456789abcdefSECRET';
const ANTHROPIC_KEY = 'anthropic-key-0123456789SECRET';
const GEMINI_KEY = 'gemini-key-0123456789SECRET';

let mock: MockLlm;
let registry: ProviderRegistry;

function configFor(url: string, overrides: Partial<LlmProvidersConfig> = {}): LlmProvidersConfig {
  return mockProvidersConfig(url, { openai: OPENAI_KEY, anthropic: ANTHROPIC_KEY, gemini: GEMINI_KEY }, overrides);
}

async function collect(events: AsyncIterable<ChatStreamEvent>): Promise<ChatStreamEvent[]> {
  const out: ChatStreamEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

const textOf = (events: ChatStreamEvent[]): string =>
  events.map((event) => (event.type === 'text' ? event.delta : '')).join('');

const user = (content: string) => [{ role: 'user' as const, content }];

const lookupTool: ChatToolDefinition = {
  name: 'lookup_customer',
  description: 'Find a customer by id',
  input_schema: {
    type: 'object',
    properties: { customer_id: { type: 'string' }, fields: { type: 'array', items: { type: 'string' } } },
    required: ['customer_id'],
  },
};

beforeAll(async () => {
  routeSdkWarnings(false);
  mock = await startMockLlm({ models: ['m1'] });
  registry = createProviderRegistry(configFor(mock.url));
});

afterEach(() => {
  expect(mock.remaining).toBe(0);
  mock.requests.length = 0;
});

afterAll(async () => {
  await mock.close();
});

const streamingProviders: ProviderName[] = ['openai', 'ollama', 'anthropic', 'gemini'];

describe.each(streamingProviders)('%s through its real client', (provider) => {
  it('streams text chunk by chunk and reports usage', async () => {
    mock.script(textReply(['The ', 'quick ', 'brown ', 'fox'], { usage: [42, 4] }));
    const events = await collect(
      registry.streamChat({ modelId: `${provider}/m1`, system: 'Be brief.', messages: user('Say it') }),
    );

    expect(events.filter((event) => event.type === 'text').map((event) => event.type === 'text' && event.delta)).toEqual([
      'The ',
      'quick ',
      'brown ',
      'fox',
    ]);
    expect(events.at(-1)).toEqual({ type: 'finish', finishReason: 'stop', usage: { input_tokens: 42, output_tokens: 4 } });
    const [request] = mock.chatRequests();
    expect(request.wire).toBe(provider);
    expect(request.stream).toBe(true);
    expect(JSON.stringify(request.body)).toContain('Say it');
    expect(JSON.stringify(request.body)).toContain('Be brief.');
  });

  it('assembles a tool call whose arguments arrive in fragments, and stops after one step', async () => {
    const args = { customer_id: 'C-1042', fields: ['name', 'email', 'straße "quoted"'] };
    mock.script(toolCallReply('lookup_customer', args, { id: 'call_abc', fragments: 5, text: ['Let me check. '] }));
    const events = await collect(
      registry.streamChat({ modelId: `${provider}/m1`, messages: user('Who is C-1042?'), tools: [lookupTool] }),
    );

    expect(textOf(events)).toBe('Let me check. ');
    const calls = events.filter((event) => event.type === 'tool_call');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ type: 'tool_call', toolName: 'lookup_customer', args });
    expect(events.at(-1)).toMatchObject({ type: 'finish', finishReason: 'tool-calls' });
    // The tool was only proposed: no second request came back with a tool result.
    expect(mock.chatRequests()).toHaveLength(1);
    expect(JSON.stringify(mock.chatRequests()[0].body)).toContain('"customer_id"');
  });

  it('sends the tool result back in its format when the caller loops', async () => {
    mock.script(textReply(['C-1042 is Ada.']));
    const events = await collect(
      registry.streamChat({
        modelId: `${provider}/m1`,
        tools: [lookupTool],
        messages: [
          { role: 'user', content: 'Who is C-1042?' },
          {
            role: 'assistant',
            content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'lookup_customer', input: { customer_id: 'C-1042' } }],
          },
          {
            role: 'tool',
            content: [
              {
                type: 'tool-result',
                toolCallId: 'call_1',
                toolName: 'lookup_customer',
                output: { type: 'json', value: { name: 'Ada Lovelace' } },
              },
            ],
          },
        ],
      }),
    );

    expect(textOf(events)).toBe('C-1042 is Ada.');
    const body = JSON.stringify(mock.chatRequests()[0].body);
    expect(body).toContain('Ada Lovelace');
    expect(body).toContain('C-1042');
  });

  it('turns an upstream 500 into an error event', async () => {
    mock.script([{ type: 'error', status: 500, message: 'model crashed' }]);
    const events = await collect(registry.streamChat({ modelId: `${provider}/m1`, messages: user('hi') }));

    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event.type).toBe('error');
    if (event.type !== 'error') return;
    expect(event.error).toBeInstanceOf(ProviderRequestError);
    expect(event.error.provider).toBe(provider);
    expect(event.error.message).toContain(provider);
    expect(event.error.message).toContain('500');
  });

  it('turns an upstream 401 into an error event that never contains the API key', async () => {
    // The mock echoes the presented key in its 401 message, as OpenAI does.
    mock.script([{ type: 'error', status: 401 }]);
    const events = await collect(registry.streamChat({ modelId: `${provider}/m1`, messages: user('hi') }));

    const [event] = events;
    expect(event.type).toBe('error');
    if (event.type !== 'error') return;
    expect(event.error).toMatchObject({ provider, upstreamStatus: 401 });
    const rendered = `${event.error.message} ${inspect(event.error, { depth: 10 })} ${JSON.stringify(event.error)}`;
    for (const key of [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, 'SECRET']) expect(rendered).not.toContain(key);
  });
});

describe('timeouts', () => {
  it('gives up on a provider that never answers, within the bound, and closes the connection', async () => {
    mock.script([{ type: 'hang' }]);
    const started = performance.now();
    const events = await collect(
      registry.streamChat({ modelId: 'openai/m1', messages: user('hi'), timeoutMs: 300 }),
    );
    const elapsed = performance.now() - started;

    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'error', error: { phase: 'first_token', timeoutMs: 300 } });
    expect(events[0].type === 'error' && events[0].error).toBeInstanceOf(ProviderTimeoutError);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1000);
    const [request] = mock.chatRequests();
    await request.closed;
    expect(request.aborted).toBe(true);
  });

  it('gives up when the stream stalls between chunks', async () => {
    mock.script([{ type: 'text', text: 'partial' }, { type: 'hang' }]);
    const events = await collect(
      registry.streamChat({ modelId: 'ollama/m1', messages: user('hi'), timeoutMs: 2000, stallTimeoutMs: 200 }),
    );

    expect(textOf(events)).toBe('partial');
    expect(events.at(-1)).toMatchObject({ type: 'error', error: { code: 'provider_timeout', phase: 'stall' } });
  });

  it('does not count time the consumer spends on an event against the provider', async () => {
    mock.script(textReply(['a', 'b', 'c']));
    const events: ChatStreamEvent[] = [];
    for await (const event of registry.streamChat({ modelId: 'anthropic/m1', messages: user('hi'), timeoutMs: 250 })) {
      events.push(event);
      // A slow downstream client: twice the timeout, while the provider has already sent everything.
      if (events.length === 1) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(textOf(events)).toBe('abc');
    expect(events.at(-1)).toMatchObject({ type: 'finish' });
  });
});

describe('cancellation', () => {
  it.each(['openai', 'ollama', 'anthropic'] as const)(
    'aborting mid-stream closes the %s connection at once and ends the iteration quietly',
    async (provider) => {
      mock.script(textReply(Array.from({ length: 40 }, (_, i) => `t${i} `), { chunkDelayMs: 25 }));
      const controller = new AbortController();
      const events: ChatStreamEvent[] = [];
      let abortedAt = 0;
      for await (const event of registry.streamChat({
        modelId: `${provider}/m1`,
        messages: user('hi'),
        abortSignal: controller.signal,
      })) {
        events.push(event);
        if (events.length === 2) {
          abortedAt = performance.now();
          controller.abort();
        }
      }
      const [request] = mock.chatRequests();
      await request.closed;

      expect(events.map((event) => event.type)).toEqual(['text', 'text']);
      expect(request.aborted).toBe(true);
      expect((request.abortedAt ?? Infinity) - abortedAt).toBeLessThan(100);
    },
  );

  it('closes the connection when the consumer stops reading early', async () => {
    mock.script(textReply(Array.from({ length: 40 }, (_, i) => `t${i} `), { chunkDelayMs: 25 }));
    for await (const event of registry.streamChat({ modelId: 'openai/m1', messages: user('hi') })) {
      if (event.type === 'text') break;
    }
    const stoppedAt = performance.now();
    const [request] = mock.chatRequests();
    await request.closed;

    expect(request.aborted).toBe(true);
    expect((request.abortedAt ?? Infinity) - stoppedAt).toBeLessThan(100);
  });

  it('does not call the provider at all when the signal is already aborted', async () => {
    const events = await collect(
      registry.streamChat({ modelId: 'openai/m1', messages: user('hi'), abortSignal: AbortSignal.abort() }),
    );
    expect(events).toEqual([]);
    expect(mock.chatRequests()).toHaveLength(0);
  });
});

describe('failures', () => {
  it('reports a connection dropped mid-stream as the provider being unavailable', async () => {
    // The break comes a moment after the chunk, as on a real network: chunks still queued inside the SDK's streams
    // when the socket errors are discarded with the error.
    mock.script([{ type: 'text', text: 'Hello' }, { type: 'delay', ms: 50 }, { type: 'drop' }]);
    const events = await collect(registry.streamChat({ modelId: 'openai/m1', messages: user('hi') }));

    expect(textOf(events)).toBe('Hello');
    const last = events.at(-1);
    expect(last?.type).toBe('error');
    expect(last?.type === 'error' && last.error).toBeInstanceOf(ProviderUnavailableError);
  });

  it('reports an error event sent inside the stream', async () => {
    mock.script([{ type: 'text', text: 'Hel' }, { type: 'error', status: 500, message: 'overloaded mid-way' }]);
    const events = await collect(registry.streamChat({ modelId: 'anthropic/m1', messages: user('hi') }));

    expect(textOf(events)).toBe('Hel');
    const last = events.at(-1);
    expect(last).toMatchObject({ type: 'error', error: { provider: 'anthropic' } });
    expect(last?.type === 'error' && last.error.message).toContain('overloaded mid-way');
  });

  it('reports an unreachable provider as unavailable, naming it', async () => {
    const closedPort = await unusedPort();
    const offline = createProviderRegistry(configFor(mock.url, { ollamaBaseUrl: `http://127.0.0.1:${closedPort}` }));
    const events = await collect(offline.streamChat({ modelId: 'ollama/m1', messages: user('hi') }));

    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'error', error: { code: 'provider_unavailable', provider: 'ollama' } });
  });

  it('rejects a model of an unconfigured provider before any request', () => {
    const onlyOllama = createProviderRegistry({ ollamaBaseUrl: mock.url, openaiLocal: false, requestTimeoutMs: 1000 });
    expect(() => onlyOllama.streamChat({ modelId: 'gemini/m1', messages: user('hi') })).toThrow(
      ProviderNotConfiguredError,
    );
    expect(() => onlyOllama.streamChat({ modelId: 'nope', messages: user('hi') })).toThrow(/provider\/model/);
  });
});

describe('OpenAI-compatible servers', () => {
  it('streams from a keyless local server through the chat completions API', async () => {
    const local = createProviderRegistry({ openaiBaseUrl: mock.url, openaiLocal: true, requestTimeoutMs: 1000 });
    mock.script(textReply(['local ', 'answer']));
    const events = await collect(local.streamChat({ modelId: 'openai/Qwen/Qwen2.5-7B-Instruct', messages: user('hi') }));

    expect(textOf(events)).toBe('local answer');
    const [request] = mock.chatRequests();
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.body).toMatchObject({ model: 'Qwen/Qwen2.5-7B-Instruct', stream: true });
    expect(local.listProviders()).toEqual([{ name: 'openai', is_local: true }]);
  });
});

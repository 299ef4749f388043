import { beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../db/client.js';
import type { AuditEventInput } from '../audit/audit.service.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import type { ResolvedModel } from '../llm/llm.service.js';
import type { ChatStreamEvent, StreamChatRequest } from '../llm/providers/index.js';
import { PlaceholderVault, RedactionFailedError } from '../redaction/index.js';
import { longStrings } from '../redaction/detection-offload.js';
import { primeDetection } from '../redaction/redactor.js';
import type { ChatToolRuntime } from './chat-tools.js';
import type { HistoryMessage } from './chat.context.js';
import { loadTokenizer } from './chat.tokens.js';
import { toSseEvent } from './sse-adapter.js';
import { createTurnRunner, statelessStore, type TurnDeps, type TurnEvent, type TurnPlan } from './turn.js';

const actor: Actor = { userId: '00000000-0000-4000-8000-000000000001', username: 'ann', role: 'ANALYST', sessionId: '00000000-0000-4000-8000-000000000002' };
const context: RequestContext = { ipAddress: '127.0.0.1', userAgent: 'test', requestId: 'r1' };

const cloud: ResolvedModel = {
  id: 'openai/mock-model',
  provider: 'openai',
  name: 'mock-model',
  isLocal: false,
  contextTokens: 8_192,
  temperature: undefined,
  maxOutputTokens: undefined,
};
const local: ResolvedModel = { ...cloud, id: 'ollama/mock-model', provider: 'ollama', isLocal: true };

/** A provider that answers each call with the next script and keeps what it was sent. */
function fakeProvider(scripts: ChatStreamEvent[][]) {
  const requests: StreamChatRequest[] = [];
  return {
    requests,
    streamChat(request: StreamChatRequest): AsyncIterable<ChatStreamEvent> {
      requests.push(request);
      const script = scripts.shift();
      if (!script) throw new Error('the provider was called more often than scripted');
      return (async function* () {
        for (const event of script) yield event;
      })();
    },
  };
}

function harness(scripts: ChatStreamEvent[][], options: { redact?: boolean; detection?: TurnDeps['detection'] } = {}) {
  const provider = fakeProvider(scripts);
  const audited: AuditEventInput[] = [];
  const usage: Array<{ input_tokens: number | null; output_tokens: number | null }> = [];
  const deps: Parameters<typeof createTurnRunner>[0] = {
    db: {} as Db,
    audit: {
      recordStandalone: async (event: AuditEventInput) => {
        audited.push(event);
        return {} as never;
      },
      promptDigest: (text: string) => ({ prompt_sha256: String(text.length) }) as never,
    },
    llm: {
      streamChat: provider.streamChat,
      recordUsage: async (_db, _user, spent) => {
        usage.push(spent);
      },
      redactionPolicy: async () => ({ redactTypes: ['EMAIL', 'PHONE'], labelTypes: [], timeBudgetMs: 250 }),
    },
    redactCloudPrompts: options.redact ?? true,
    logger: { error: () => undefined },
    now: () => new Date('2026-12-03T10:00:00.000Z'),
    detection: options.detection,
  };
  return { provider, audited, usage, deps, runner: createTurnRunner(deps) };
}

function user(content: string): HistoryMessage {
  return { id: 'm1', role: 'user', content, toolCalls: [], toolCallId: null, toolName: null, tokenCount: 10 };
}

function plan(model: ResolvedModel, messages: HistoryMessage[], extra: Partial<TurnPlan> = {}, vault = new PlaceholderVault()): TurnPlan {
  return {
    actor,
    context,
    model,
    temperature: undefined,
    runtime: undefined,
    tools: [],
    store: statelessStore({ resourceType: 'chat_completion', resourceId: 'turn-1', messages, vault }),
    opening: [],
    stillWaiting: false,
    ...extra,
  };
}

function collect() {
  const events: TurnEvent[] = [];
  return { events, sink: { signal: new AbortController().signal, emit: (event: TurnEvent) => events.push(event) } };
}

const finish = (input = 5, output = 2): ChatStreamEvent => ({ type: 'finish', finishReason: 'stop', usage: { input_tokens: input, output_tokens: output } });
const types = (events: TurnEvent[]) => events.map((e) => e.type);

describe('the turn state machine', () => {
  beforeAll(() => loadTokenizer(), 30_000);

  it('streams tokens, then the final message and done; one LLM_REQUEST carrying the plan’s audit details', async () => {
    const h = harness([[{ type: 'text', delta: 'Hel' }, { type: 'text', delta: 'lo' }, finish(7, 2)]]);
    const { events, sink } = collect();

    const status = await h.runner.run(plan(local, [user('Say hello')], { auditDetails: { api_key_id: 'key-1' } }), sink);

    expect(status).toBe('completed');
    expect(types(events)).toEqual(['token', 'token', 'message', 'done']);
    expect(events[2]).toMatchObject({ type: 'message', role: 'assistant', content: 'Hello', model: 'ollama/mock-model', usage: { input_tokens: 7, output_tokens: 2 } });
    expect(events[3]).toEqual({ type: 'done', status: 'completed' });
    expect(h.audited.map((e) => e.eventType)).toEqual(['LLM_REQUEST']);
    expect(h.audited[0]!.details).toMatchObject({ api_key_id: 'key-1', status: 'completed', redacted: false });
    expect(h.audited[0]).toMatchObject({ resourceType: 'chat_completion', resourceId: 'turn-1' });
    expect(h.usage).toEqual([{ input_tokens: 7, output_tokens: 2 }]);
  });

  it('redacts what a cloud model is sent and restores placeholders in streamed text and tool-call arguments', async () => {
    // The model answers with the placeholder split across two chunks, and uses it in a client tool's arguments.
    const h = harness([
      [
        { type: 'text', delta: 'Writing to [EMA' },
        { type: 'text', delta: 'IL_1] now' },
        { type: 'tool_call', toolCallId: 'c1', toolName: 'send_mail', args: { to: '[EMAIL_1]' } },
        finish(),
      ],
    ]);
    const { events, sink } = collect();
    const tools = [{ name: 'send_mail', input_schema: { type: 'object' as const } }];

    const status = await h.runner.run(plan(cloud, [user('Mail jane.doe@example.com please')], { tools, clientTools: true }), sink);

    expect(status).toBe('completed');
    const sent = JSON.stringify(h.provider.requests[0]!.messages);
    expect(sent).not.toContain('jane.doe@example.com');
    expect(sent).toContain('[EMAIL_1]');
    expect(h.provider.requests[0]!.system).toContain('placeholders');
    const text = events.flatMap((e) => (e.type === 'token' ? [e.delta] : [])).join('');
    expect(text).toBe('Writing to jane.doe@example.com now');
    expect(events.find((e) => e.type === 'tool_call')).toEqual({ type: 'tool_call', tool_call_id: 'c1', tool: 'send_mail', args: { to: 'jane.doe@example.com' } });
    // A client tool's call ends the turn and comes back in the final message; nothing ran it.
    const message = events.find((e) => e.type === 'message');
    expect(message).toMatchObject({ tool_calls: [{ tool_call_id: 'c1', tool: 'send_mail', args: { to: 'jane.doe@example.com' } }] });
    expect(h.provider.requests).toHaveLength(1);
    expect(h.audited.map((e) => e.eventType)).toEqual(['PII_REDACTED', 'LLM_REQUEST']);
  });

  it('runs server-side tools through the runtime and calls the model again with the result', async () => {
    const h = harness([
      [{ type: 'tool_call', toolCallId: 'c1', toolName: 'lookup', args: { q: 'x' } }, finish()],
      [{ type: 'text', delta: 'Found it' }, finish()],
    ]);
    const calls: string[] = [];
    const runtime: ChatToolRuntime = {
      listForActor: async () => [],
      executeFromChat: async (_actor, call) => {
        calls.push(call.toolName);
        return { status: 'completed', execution_id: 'e1', result: { hit: 1 }, cached: false };
      },
      resumeApproval: async () => {
        throw new Error('not expected');
      },
    };
    const { events, sink } = collect();

    const status = await h.runner.run(plan(local, [user('Look it up')], { runtime, tools: [{ name: 'lookup', input_schema: { type: 'object' } }] }), sink);

    expect(status).toBe('completed');
    expect(calls).toEqual(['lookup']);
    expect(types(events)).toEqual(['tool_call', 'tool_result', 'token', 'message', 'done']);
    expect(events[1]).toEqual({ type: 'tool_result', tool_call_id: 'c1', tool: 'lookup', status: 'completed', result: { hit: 1 } });
    const tool = h.provider.requests[1]!.messages.find((m) => m.role === 'tool');
    expect(tool).toMatchObject({ content: [{ type: 'tool-result', toolCallId: 'c1', output: { type: 'text', value: JSON.stringify({ status: 'completed', result: { hit: 1 } }) } }] });
  });

  it('with client tools beside server-side ones: runs a server call here, hands a client call back, never offers server tools last', async () => {
    const h = harness(
      [
        [{ type: 'tool_call', toolCallId: 's1', toolName: 'search_documents', args: { query: 'q' } }, finish()],
        [{ type: 'tool_call', toolCallId: 'c1', toolName: 'send_mail', args: { to: 'x' } }, finish()],
      ],
      { redact: false },
    );
    const ran: string[] = [];
    const runtime: ChatToolRuntime = {
      listForActor: async () => [],
      executeFromChat: async (_actor, call) => {
        ran.push(call.toolName);
        return { status: 'completed', execution_id: 'e1', result: { results: [] }, cached: false };
      },
      resumeApproval: async () => {
        throw new Error('not expected');
      },
    };
    const tools = [
      { name: 'send_mail', input_schema: { type: 'object' as const } },
      { name: 'search_documents', input_schema: { type: 'object' as const } },
    ];
    const { events, sink } = collect();

    const status = await h.runner.run(plan(local, [user('Find and mail')], { runtime, tools, clientTools: true, serverTools: new Set(['search_documents']) }), sink);

    expect(status).toBe('completed');
    expect(ran).toEqual(['search_documents']);
    const message = events.find((e) => e.type === 'message') as Extract<TurnEvent, { type: 'message' }>;
    expect(message.tool_calls).toEqual([{ tool_call_id: 'c1', tool: 'send_mail', args: { to: 'x' } }]);
    expect(h.provider.requests.map((r) => r.tools?.map((tool) => tool.name))).toEqual([
      ['send_mail', 'search_documents'],
      ['send_mail', 'search_documents'],
    ]);

    // At the last step only the client's tools are offered, so the turn always ends.
    const last = harness([[{ type: 'text', delta: 'done' }, finish()]], { redact: false });
    const runner = createTurnRunner({ ...last.deps, maxSteps: 1 });
    await runner.run(plan(local, [user('Find')], { runtime, tools, clientTools: true, serverTools: new Set(['search_documents']) }), collect().sink);
    expect(last.provider.requests[0]!.tools?.map((tool) => tool.name)).toEqual(['send_mail']);
  });

  it('ends with an error event and done error when the provider fails', async () => {
    const failure = new Error('upstream said no');
    const h = harness([[{ type: 'error', error: failure as never }]]);
    const { events, sink } = collect();

    expect(await h.runner.run(plan(local, [user('hi')]), sink)).toBe('error');
    expect(events).toEqual([
      { type: 'error', error: failure },
      { type: 'done', status: 'error' },
    ]);
    expect(h.audited[0]!.details).toMatchObject({ status: 'error', error: 'upstream said no' });
  });

  it('refuses the cloud call when the redactor fails: the provider is never called', async () => {
    class FailingVault extends PlaceholderVault {
      override redact(): never {
        throw new RedactionFailedError('error');
      }
    }
    const h = harness([[{ type: 'text', delta: 'must not be sent' }, finish()]]);
    const { events, sink } = collect();

    await expect(h.runner.run(plan(cloud, [user('Mail jane.doe@example.com')], {}, new FailingVault()), sink)).rejects.toBeInstanceOf(RedactionFailedError);
    expect(h.provider.requests).toHaveLength(0);
    expect(events.filter((e) => e.type === 'token')).toEqual([]);
  });

  it('has long texts detected ahead (off the event loop) before a cloud call, and redacts with what was found there', async () => {
    const pasted = `Contract notes. ${'The parties agree to the terms below. '.repeat(300)} Contact: jane.doe@example.com.`;
    const asked: unknown[] = [];
    // Stands in for the worker pool: detects elsewhere (here, the same detectors) and primes the redactor.
    const detection: TurnDeps['detection'] = {
      prefetch: async (value) => {
        asked.push(value);
        // What it "found" includes a span no in-place detector would report, so the test sees which result was used.
        for (const text of longStrings(value, 8_192)) {
          primeDetection(text, [
            { type: 'EMAIL', value: 'Contract', start: 0, end: 8 },
            { type: 'EMAIL', value: 'jane.doe@example.com', start: text.indexOf('jane.doe'), end: text.indexOf('jane.doe') + 20 },
          ]);
        }
      },
    };
    const h = harness([[{ type: 'text', delta: 'Noted' }, finish()]], { detection });
    const { sink } = collect();

    await h.runner.run(plan(cloud, [user(pasted)]), sink);

    expect(asked).toHaveLength(1);
    expect([...longStrings(asked[0], 8_192)]).toContain(pasted);
    const sent = JSON.stringify(h.provider.requests[0]!.messages);
    expect(sent).not.toContain('jane.doe@example.com');
    expect(sent).toContain('[EMAIL_1] notes');
    expect(sent).toContain('Contact: [EMAIL_2]');
  });

  it('asks for nothing ahead when the model is local (nothing is redacted)', async () => {
    const asked: unknown[] = [];
    const h = harness([[{ type: 'text', delta: 'ok' }, finish()]], { detection: { prefetch: async (value) => void asked.push(value) } });
    await h.runner.run(plan(local, [user('x'.repeat(10_000))]), collect().sink);
    expect(asked).toEqual([]);
  });

  it('sends opening events first and stops there while a continuation still waits for approvals', async () => {
    const h = harness([]);
    const { events, sink } = collect();
    const opening: TurnEvent[] = [{ type: 'session', session_id: 's1', message_id: 'm1' }];

    expect(await h.runner.run(plan(local, [user('x')], { opening, stillWaiting: true }), sink)).toBe('awaiting_approval');
    expect(events).toEqual([...opening, { type: 'done', status: 'awaiting_approval' }]);
  });
});

describe('the SSE adapter', () => {
  it('writes each event under its own name with its fields as data, and errors as problem objects', () => {
    expect(toSseEvent({ type: 'token', delta: 'a' }, () => null)).toEqual({ event: 'token', data: { delta: 'a' } });
    expect(toSseEvent({ type: 'done', status: 'completed' }, () => null)).toEqual({ event: 'done', data: { status: 'completed' } });
    expect(toSseEvent({ type: 'error', error: new Error('x') }, () => ({ status: 502 }))).toEqual({ event: 'error', data: { status: 502 } });
  });
});

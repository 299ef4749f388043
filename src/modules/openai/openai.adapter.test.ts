import { describe, expect, it } from 'vitest';
import { ForbiddenError, RateLimitedError, UnauthorizedError, ValidationError } from '../../lib/errors.js';
import { RoutingRefusedError } from '../chat/knowledge.js';
import type { TurnEvent } from '../chat/turn.js';
import { ModelAccessDeniedError, TokenBudgetExceededError, UnknownModelError } from '../llm/llm.service.js';
import { createChunkStream, createCompletionCollector, toStatelessInput, type CompletionMeta } from './openai.adapter.js';
import { paramOf, toOpenAiError } from './openai.errors.js';

const meta: CompletionMeta = { id: 'chatcmpl-1', created: 1, model: 'openai/m', label: 'PUBLIC', cdsaRequested: false };
const message = (extra: Partial<Extract<TurnEvent, { type: 'message' }>> = {}): TurnEvent => ({
  type: 'message',
  id: 'a1',
  role: 'assistant',
  content: 'Hi',
  model: 'openai/m',
  usage: { input_tokens: 3, output_tokens: 2 },
  created_at: '2026-12-03T10:00:00.000Z',
  status: 'completed',
  ...extra,
});

describe('OpenAI chunks from turn events', () => {
  it('role first, content deltas, then the finish chunk and the usage chunk; server-side tool events never show', () => {
    const stream = createChunkStream(meta, { includeUsage: true });
    const events: TurnEvent[] = [
      { type: 'tool_call', tool_call_id: 's1', tool: 'search_documents', args: { query: 'q' } },
      { type: 'tool_result', tool_call_id: 's1', tool: 'search_documents', status: 'completed', result: {} },
      { type: 'citation', n: 1, document_id: 'd1', chunk_id: 'c1', title: 'T', page: null, label: 'INTERNAL' },
      { type: 'token', delta: 'H' },
      { type: 'token', delta: 'i' },
      message(),
    ];
    const chunks = events.flatMap((event) => stream.chunks(event)) as Array<{ choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }>; usage?: unknown; cdsa?: unknown }>;
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([{ role: 'assistant', content: '' }, { content: 'H' }, { content: 'i' }, {}, null]);
    expect(chunks[3]!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks[3]!.cdsa).toEqual({ citations: [{ n: 1, document_id: 'd1', chunk_id: 'c1', title: 'T', page: null, label: 'INTERNAL' }], label: 'PUBLIC', routed_to: null });
    expect(chunks[4]).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
  });

  it("the client's tool calls come whole from the final message, with finish_reason tool_calls", () => {
    const calls = [{ tool_call_id: 'c1', tool: 'send_mail', args: { to: 'a@b.c' } }];
    const chunks = createChunkStream(meta, { includeUsage: false }).chunks(message({ content: '', tool_calls: calls })) as Array<{ choices: Array<{ delta: { tool_calls?: unknown }; finish_reason: string | null }> }>;
    expect(chunks[1]!.choices[0]!.delta.tool_calls).toEqual([{ index: 0, id: 'c1', type: 'function', function: { name: 'send_mail', arguments: '{"to":"a@b.c"}' } }]);
    expect(chunks[2]!.choices[0]!.finish_reason).toBe('tool_calls');

    const collector = createCompletionCollector(meta);
    collector.add(message({ content: '', tool_calls: calls }));
    expect(collector.completion().choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { content: null, tool_calls: [{ id: 'c1' }] } });
  });

  it('a request becomes a stateless turn: developer is system, tool_choice none offers no tools, JSON schema passes on', () => {
    const input = toStatelessInput({
      model: 'openai/m',
      messages: [
        { role: 'developer', content: 'Be brief' },
        { role: 'user', content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'there' }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
        { role: 'tool', tool_call_id: 't1', content: 'ok' },
      ],
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: 'none',
      max_tokens: 50,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
    });
    expect(input.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(input.messages[1]!.content).toBe('Hi there');
    expect(input.messages[2]!.tool_calls).toEqual([{ tool_call_id: 't1', tool: 'f', args: { a: 1 } }]);
    expect(input.tools).toBeUndefined();
    expect(input.maxOutputTokens).toBe(50);
    expect(input.responseFormat).toEqual({ type: 'json', name: 'x', schema: { type: 'object' } });
    expect(() => toStatelessInput({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).toThrow(ValidationError);
    expect(() => toStatelessInput({ model: 'm', messages: [{ role: 'assistant', tool_calls: [{ id: 't', function: { name: 'f', arguments: '{' } }] }] })).toThrow(
      /must be JSON/,
    );
  });
});

describe('OpenAI error shape', () => {
  it('maps the error family onto OpenAI statuses, types and codes', () => {
    const cases: Array<[unknown, number, string, string | null]> = [
      [new UnauthorizedError(), 401, 'invalid_request_error', 'invalid_api_key'],
      [new ForbiddenError('no scope'), 403, 'permission_error', 'permission_denied'],
      [new UnknownModelError('openai/x', []), 404, 'invalid_request_error', 'model_not_found'],
      [new ModelAccessDeniedError('openai/x'), 404, 'invalid_request_error', 'model_not_found'],
      [new TokenBudgetExceededError('used up', 60), 429, 'insufficient_quota', 'insufficient_quota'],
      [new RateLimitedError('slow down', 5), 429, 'rate_limit_error', 'rate_limit_exceeded'],
      [new ValidationError('bad', [{ pointer: '/messages/0/content', detail: 'x' }]), 400, 'invalid_request_error', 'invalid_request'],
      [new Error('boom'), 500, 'api_error', 'internal_error'],
    ];
    for (const [error, status, type, code] of cases) {
      const mapped = toOpenAiError(error);
      expect([mapped.status, mapped.body.error.type, mapped.body.error.code], String(error)).toEqual([status, type, code]);
    }
    expect(toOpenAiError(new RateLimitedError('x', 5)).headers['Retry-After']).toBe('5');
    expect(toOpenAiError(new Error('secret detail')).body.error.message).not.toContain('secret');
    const refusal = new RoutingRefusedError({ action: 'refuse', reason: 'r', code: 'no_fallback' } as never, { label: 'CONFIDENTIAL', model: 'openai/x', cloudMaxLabel: 'INTERNAL' });
    expect(toOpenAiError(refusal)).toMatchObject({ status: 403, body: { error: { code: 'sensitivity_routing_refused' } } });
    expect(paramOf('/messages/0/content')).toBe('messages[0].content');
    expect(paramOf('/cdsa/document_ids/2')).toBe('cdsa.document_ids[2]');
  });
});

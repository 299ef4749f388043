import { describe, expect, it } from 'vitest';
import { PlaceholderVault } from '../redaction/index.js';
import { chooseContext, countsForAudit, createRedactor, toModelMessages, type HistoryMessage } from './chat.context.js';
import { MESSAGE_OVERHEAD_TOKENS } from './chat.tokens.js';

const msg = (role: HistoryMessage['role'], content: string, extra: Partial<HistoryMessage> = {}): HistoryMessage => ({
  id: `${role}-${content}`,
  role,
  content,
  toolCalls: [],
  toolCallId: null,
  toolName: null,
  tokenCount: 10,
  ...extra,
});

describe('chooseContext', () => {
  it('keeps every message when they fit', () => {
    const history = [msg('user', 'a'), msg('assistant', 'b'), msg('user', 'c')];
    const { kept, truncated } = chooseContext(history, 3 * (10 + MESSAGE_OVERHEAD_TOKENS));
    expect(kept.map((m) => m.content)).toEqual(['a', 'b', 'c']);
    expect(truncated).toBe(false);
  });

  it('drops the oldest turns first and starts at a user message', () => {
    const history = [msg('user', 'a'), msg('assistant', 'b'), msg('user', 'c'), msg('assistant', 'd'), msg('user', 'e')];
    // Room for four messages: b..e would fit, but the window must not start with an answer.
    const { kept, truncated } = chooseContext(history, 4 * (10 + MESSAGE_OVERHEAD_TOKENS));
    expect(kept.map((m) => m.content)).toEqual(['c', 'd', 'e']);
    expect(truncated).toBe(true);
  });

  it('never starts the window with a tool result cut off from its call', () => {
    const call = { tool_call_id: 't1', tool: 'lookup', args: {} };
    const history = [
      msg('user', 'a'),
      msg('assistant', '', { toolCalls: [call] }),
      msg('tool', '{"status":"completed"}', { toolCallId: 't1', toolName: 'lookup' }),
      msg('assistant', 'answer'),
      msg('user', 'next'),
    ];
    const { kept } = chooseContext(history, 3 * (10 + MESSAGE_OVERHEAD_TOKENS));
    expect(kept.map((m) => m.role)).toEqual(['user']);
  });

  it('leaves out empty answers (a failed call) entirely', () => {
    const history = [msg('user', 'a'), msg('assistant', '', { tokenCount: 0 }), msg('user', 'b')];
    const { kept, truncated } = chooseContext(history, 1000);
    expect(kept.map((m) => m.content)).toEqual(['a', 'b']);
    expect(truncated).toBe(false);
  });
});

describe('toModelMessages', () => {
  const call = { tool_call_id: 'call_1', tool: 'lookup', args: { email: 'jane@example.com' } };

  it('pairs tool calls with their results and drops calls that never got one', () => {
    const history = [
      msg('user', 'find jane'),
      msg('assistant', 'Looking', { toolCalls: [call, { tool_call_id: 'call_2', tool: 'other', args: {} }] }),
      msg('tool', '{"status":"completed","result":{"ok":true}}', { toolCallId: 'call_1', toolName: 'lookup' }),
      msg('tool', '{"status":"completed"}', { toolCallId: 'orphan', toolName: 'x' }),
    ];
    const messages = toModelMessages(history);
    expect(messages).toEqual([
      { role: 'user', content: 'find jane' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Looking' },
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'lookup', input: { email: 'jane@example.com' } },
        ],
      },
      {
        role: 'tool',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'call_1',
            toolName: 'lookup',
            output: { type: 'text', value: '{"status":"completed","result":{"ok":true}}' },
          },
        ],
      },
    ]);
  });

  it('redacts every string that leaves, with one stable placeholder per value', () => {
    const vault = new PlaceholderVault();
    const redactor = createRedactor(vault);
    const history = [
      msg('user', 'mail jane@example.com please'),
      msg('assistant', '', { toolCalls: [call] }),
      msg('tool', '{"status":"completed","result":{"email":"jane@example.com","phone":"+1 415 555 0100"}}', {
        toolCallId: 'call_1',
        toolName: 'lookup',
      }),
    ];
    const text = JSON.stringify(toModelMessages(history, redactor));
    expect(text).not.toContain('jane@example.com');
    expect(text).not.toContain('555 0100');
    expect(text.match(/\[EMAIL_1\]/g)).toHaveLength(3);
    expect(text).toContain('[PHONE_1]');
    expect(countsForAudit(redactor.counts)).toEqual({
      total: 4,
      entities: [
        { type: 'EMAIL', count: 3 },
        { type: 'PHONE', count: 1 },
      ],
    });
  });
});

import { describe, expect, it } from 'vitest';
import { PlaceholderVault } from '../redaction/index.js';
import { chooseContext, countsForAudit, createRedactor, restoreToolArgs, toModelMessages, type HistoryMessage } from './chat.context.js';
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

// Valid by their checksums (Luhn, mod-97, SSN area rules), separated the way exported tables are: tabs and newlines.
const TABBED_ROW = 'Customers:\nJane Roe\t4000056655665556\t401-22-3344\tGB82 WEST 1234 5698 7654 32\tsk-proj-Abc123Def456Ghi789Jkl0\tjane.roe@example.com\n';
const TABBED_VALUES = ['4000056655665556', '401-22-3344', 'GB82 WEST 1234 5698 7654 32', 'sk-proj-Abc123Def456Ghi789Jkl0', 'jane.roe@example.com'];

describe('prompt redaction works on values, not on their JSON form', () => {
  const call = { tool_call_id: 'call_1', tool: 'export', args: { query: 'all' } };

  it('catches personal data after a tab or newline inside a tool result', () => {
    const redactor = createRedactor(new PlaceholderVault());
    const history = [
      msg('user', 'export the customers'),
      msg('assistant', '', { toolCalls: [call] }),
      msg('tool', JSON.stringify({ status: 'completed', result: { rows: TABBED_ROW, [TABBED_VALUES[4]!]: 'key' } }), {
        toolCallId: 'call_1',
        toolName: 'export',
      }),
    ];
    const text = JSON.stringify(toModelMessages(history, redactor));
    for (const value of TABBED_VALUES) expect(text).not.toContain(value);
    expect(text).not.toContain('Jane Roe');
    for (const placeholder of ['[PERSON_1]', '[CREDIT_CARD_1]', '[SSN_1]', '[IBAN_1]', '[SECRET_1]', '[EMAIL_1]']) expect(text).toContain(placeholder);
    // Still the payload's JSON, with the tabs where they were.
    const output = (toModelMessages(history, createRedactor(new PlaceholderVault()))[2] as { content: Array<{ output: { value: string } }> }).content[0]!.output.value;
    expect(JSON.parse(output)).toMatchObject({ status: 'completed', result: { rows: expect.stringContaining('[PERSON_1]\t[CREDIT_CARD_1]\t[SSN_1]') } });
  });

  it('catches a multi-line rejection reason', () => {
    const redactor = createRedactor(new PlaceholderVault());
    const reason = 'Not for this customer:\n401-22-3344\tjane.roe@example.com';
    const history = [
      msg('user', 'export'),
      msg('assistant', '', { toolCalls: [call] }),
      msg('tool', JSON.stringify({ status: 'rejected', error: `An approver rejected this call: ${reason}` }), { toolCallId: 'call_1', toolName: 'export' }),
    ];
    const text = JSON.stringify(toModelMessages(history, redactor));
    expect(text).not.toContain('401-22-3344');
    expect(text).not.toContain('jane.roe@example.com');
    expect(text).toContain('[SSN_1]');
  });

  it('redacts the system text and every string of the tool definitions, keeping the schema usable', () => {
    const vault = new PlaceholderVault();
    const redactor = createRedactor(vault);
    expect(redactor.text('Escalate to ops@example.org.')).toBe('Escalate to [EMAIL_1].');
    const [tool] = redactor.tools([
      {
        name: 'pay',
        description: 'Pays from GB82 WEST 1234 5698 7654 32; questions to ops@example.org',
        input_schema: {
          type: 'object',
          required: ['to'],
          properties: {
            to: { type: 'string', pattern: '^[A-Z]{2}\\d{2}', description: 'e.g. DE89 3704 0044 0532 0130 00', enum: ['DE89 3704 0044 0532 0130 00'] },
          },
        },
      },
    ]);
    const text = JSON.stringify(tool);
    expect(text).not.toContain('GB82');
    expect(text).not.toContain('DE89');
    expect(text).not.toContain('ops@example.org');
    expect(tool!.description).toBe('Pays from [IBAN_1]; questions to [EMAIL_1]');
    expect(tool!.input_schema).toEqual({
      type: 'object',
      required: ['to'],
      properties: { to: { type: 'string', pattern: '^[A-Z]{2}\\d{2}', description: 'e.g. [IBAN_2]', enum: ['[IBAN_2]'] } },
    });
    // The model answers with the placeholder; the tool gets the original back, in keys as in values.
    expect(restoreToolArgs(vault, { to: '[IBAN_2]', '[EMAIL_1]': ['[IBAN_1]'] })).toEqual({
      to: 'DE89 3704 0044 0532 0130 00',
      'ops@example.org': ['GB82 WEST 1234 5698 7654 32'],
    });
  });
});

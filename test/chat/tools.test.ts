import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BuiltinTool } from '../../src/modules/tools/index.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { chat, eventOf, mockEnv, names, storedMessages, tokensOf } from './helpers.js';

const API = '/api/v1';
const EMAIL = 'jane.doe@example.com';
const PHONE = '+1 415 555 0134';

const lookups: Array<Record<string, unknown>> = [];
let archived = 0;

const lookupCustomer: BuiltinTool = {
  name: 'lookup_customer',
  description: 'Finds a customer by e-mail address',
  inputSchema: { type: 'object', additionalProperties: false, required: ['email'], properties: { email: { type: 'string' } } },
  outputSchema: null,
  requiresApproval: false,
  options: [],
  seed: true,
  async run(args) {
    lookups.push(args);
    return { name: 'Jane Doe', email: args.email, phone: PHONE };
  },
};

const archiveRecords: BuiltinTool = {
  name: 'archive_records',
  description: 'Archives customer records (needs an approval)',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['ids'],
    properties: { ids: { type: 'array', items: { type: 'string' } } },
  },
  outputSchema: null,
  requiresApproval: true,
  options: [],
  seed: true,
  async run(args) {
    archived += 1;
    return { archived: Array.isArray(args.ids) ? args.ids.length : 0 };
  },
};

let mock: MockLlm;
let t: TestApp;
let manager: TestUser;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  t = await buildTestApp({
    env: mockEnv(mock.url, { OPENAI_LOCAL: 'false' }),
    beforeReady: (app) => {
      app.tools.registerBuiltin(lookupCustomer);
      app.tools.registerBuiltin(archiveRecords);
    },
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  manager = await createUser(t, { role: 'MANAGER' });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

interface SentMessage {
  role: string;
  content?: unknown;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}
const sentMessages = (index: number): SentMessage[] => (mock.chatRequests()[index]!.body as { messages: SentMessage[] }).messages;
const sentTools = (index: number): string[] =>
  ((mock.chatRequests()[index]!.body as { tools?: Array<{ function: { name: string } }> }).tools ?? []).map((tool) => tool.function.name);

const decide = (approvalId: string, decision: 'APPROVED' | 'REJECTED', reason?: string) =>
  t.app.inject({ method: 'POST', url: `${API}/approvals/${approvalId}/decide`, headers: manager.headers, payload: { decision, ...(reason ? { reason } : {}) } });

const continueChat = (user: TestUser, sessionId: string, approvalId: string) =>
  chat(t, user.headers, { session_id: sessionId, approval_id: approvalId }, `${API}/chat/continue`);

describe('tools in chat', () => {
  it('runs the call the model proposes with the original values, then lets the model answer', async () => {
    const user = await createUser(t);
    mock.script(
      toolCallReply('lookup_customer', { email: '[EMAIL_1]' }, { id: 'call_lookup' }),
      textReply(['Her phone is [PHONE_1].']),
    );

    const stream = await chat(t, user.headers, { message: `Who is ${EMAIL}?`, model: 'openai/mock-model' });

    expect(names(stream.events)).toEqual(['session', 'tool_call', 'tool_result', 'token', 'message', 'done']);
    expect(eventOf(stream.events, 'tool_call')).toEqual({ tool_call_id: 'call_lookup', tool: 'lookup_customer', args: { email: EMAIL } });
    expect(eventOf(stream.events, 'tool_result')).toEqual({
      tool_call_id: 'call_lookup',
      tool: 'lookup_customer',
      status: 'completed',
      result: { name: 'Jane Doe', email: EMAIL, phone: PHONE },
    });
    expect(lookups.at(-1)).toEqual({ email: EMAIL });
    expect(tokensOf(stream.events)).toBe(`Her phone is ${PHONE}.`);
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'completed' });

    // The second model call carries the call and its result, both redacted.
    const second = JSON.stringify(sentMessages(1));
    expect(second).not.toContain(EMAIL);
    expect(second).not.toContain(PHONE);
    expect(second).toContain('[PHONE_1]');
    const roles = sentMessages(1).map((m) => m.role);
    expect(roles).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(sentMessages(1)[2]!.tool_calls![0]!.function).toEqual({ name: 'lookup_customer', arguments: JSON.stringify({ email: '[EMAIL_1]' }) });
    expect(sentMessages(1)[3]!.tool_call_id).toBe('call_lookup');

    const rows = await storedMessages(t, String(eventOf(stream.events, 'session').session_id));
    expect(rows.map((row) => [row.role, row.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
      ['tool', 'completed'],
      ['assistant', 'completed'],
    ]);
    expect(rows[1]!.tool_calls).toMatch(/^v1\./);
  });

  it('offers the tools only with tools: auto, and none on the last allowed step', async () => {
    const user = await createUser(t);
    mock.script(textReply(['no tools']));
    await chat(t, user.headers, { message: 'plain', tools: 'none', knowledge: 'none' });
    expect(sentTools(0)).toEqual([]);

    // `knowledge` decides the document search on its own.
    mock.requests.length = 0;
    mock.script(textReply(['search only']));
    await chat(t, user.headers, { message: 'plain', tools: 'none' });
    expect(sentTools(0)).toEqual(['search_documents']);

    mock.requests.length = 0;
    mock.script(
      ...Array.from({ length: 4 }, (_, i) => toolCallReply('lookup_customer', { email: `c${i}@example.com` }, { id: `call_${i}` })),
      textReply(['enough']),
    );
    const stream = await chat(t, user.headers, { message: 'look them all up' });
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'completed' });
    expect(stream.events.filter((e) => e.event === 'tool_result')).toHaveLength(4);
    expect(mock.chatRequests()).toHaveLength(5);
    for (let i = 0; i < 4; i += 1) expect(sentTools(i)).toEqual(expect.arrayContaining(['lookup_customer', 'archive_records']));
    expect(sentTools(4)).toEqual([]);
  });

  it('a failing call is reported to the model, which answers anyway', async () => {
    const user = await createUser(t);
    mock.script(toolCallReply('lookup_customer', { wrong: 1 }, { id: 'call_bad' }), textReply(['Sorry.']));
    const stream = await chat(t, user.headers, { message: 'look up nobody' });
    expect(eventOf(stream.events, 'tool_result')).toMatchObject({ tool_call_id: 'call_bad', status: 'failed', error: expect.any(String) });
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'completed' });
  });
});

describe('approvals in chat', () => {
  async function proposeArchive(user: TestUser, id: string) {
    mock.script(toolCallReply('archive_records', { ids: ['r1', 'r2'] }, { id }));
    const stream = await chat(t, user.headers, { message: 'archive r1 and r2' });
    return { stream, sessionId: String(eventOf(stream.events, 'session').session_id), approvalId: String(eventOf(stream.events, 'approval_required').approval_id) };
  }

  it('stops at the gate, then continues once approved, exactly once', async () => {
    const user = await createUser(t);
    const before = archived;
    const { stream, sessionId, approvalId } = await proposeArchive(user, 'call_arch');

    expect(names(stream.events)).toEqual(['session', 'tool_call', 'approval_required', 'message', 'done']);
    expect(eventOf(stream.events, 'approval_required')).toEqual({
      approval_id: approvalId,
      tool_call_id: 'call_arch',
      tool: 'archive_records',
      args: { ids: ['r1', 'r2'] },
    });
    expect(eventOf(stream.events, 'message')).toMatchObject({ status: 'awaiting_approval', tool_calls: [{ tool_call_id: 'call_arch', approval_id: approvalId }] });
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'awaiting_approval' });
    expect(archived).toBe(before);
    expect((await storedMessages(t, sessionId)).map((row) => row.status)).toEqual(['completed', 'awaiting_approval']);

    // While it waits: no new message in this session, no continuation, and nobody else may continue it.
    const blocked = await t.app.inject({ method: 'POST', url: `${API}/chat/stream`, headers: user.headers, payload: { message: 'and?', session_id: sessionId } });
    expect(blocked.statusCode).toBe(409);
    expect((await continueChat(user, sessionId, approvalId)).status).toBe(409);
    const stranger = await createUser(t);
    expect((await continueChat(stranger, sessionId, approvalId)).status).toBe(404);

    expect((await decide(approvalId, 'APPROVED')).statusCode).toBe(200);
    mock.script(textReply(['Archived both.']));
    const continued = await continueChat(user, sessionId, approvalId);

    expect(continued.status).toBe(200);
    expect(names(continued.events)).toEqual(['session', 'tool_result', 'token', 'message', 'done']);
    expect(eventOf(continued.events, 'session').session_id).toBe(sessionId);
    expect(eventOf(continued.events, 'tool_result')).toEqual({ tool_call_id: 'call_arch', tool: 'archive_records', status: 'completed', result: { archived: 2 } });
    expect(eventOf(continued.events, 'message')).toMatchObject({ content: 'Archived both.', status: 'completed' });
    expect(archived).toBe(before + 1);
    const lastRequest = mock.chatRequests().at(-1)!;
    const roles = (lastRequest.body as { messages: SentMessage[] }).messages.map((m) => m.role);
    expect(roles).toEqual(['system', 'user', 'assistant', 'tool']);
    expect((await storedMessages(t, sessionId)).map((row) => [row.role, row.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
      ['tool', 'completed'],
      ['assistant', 'completed'],
    ]);

    expect((await continueChat(user, sessionId, approvalId)).status).toBe(409);
    expect(archived).toBe(before + 1);
  });

  it('tells the model about a rejection, and the call never runs', async () => {
    const user = await createUser(t);
    const before = archived;
    const { sessionId, approvalId } = await proposeArchive(user, 'call_rej');
    expect((await decide(approvalId, 'REJECTED', 'not during the audit')).statusCode).toBe(200);

    mock.script(textReply(['Understood.']));
    const continued = await continueChat(user, sessionId, approvalId);

    expect(eventOf(continued.events, 'tool_result')).toMatchObject({ tool_call_id: 'call_rej', status: 'rejected', error: expect.stringContaining('not during the audit') });
    expect(eventOf(continued.events, 'done')).toEqual({ status: 'completed' });
    expect(archived).toBe(before);
  });

  it('one approval answers the same gated call proposed twice in one answer, and the session moves on', async () => {
    const user = await createUser(t);
    const before = archived;
    const args = { ids: ['r9'] };
    mock.script({
      steps: [
        { type: 'tool_call', name: 'archive_records', args, id: 'call_twice_a' },
        { type: 'tool_call', name: 'archive_records', args, id: 'call_twice_b' },
      ],
    });
    const stream = await chat(t, user.headers, { message: 'archive r9, really archive r9' });
    const approvals = stream.events.filter((e) => e.event === 'approval_required').map((e) => (e.data as { approval_id: string }).approval_id);
    expect(approvals).toHaveLength(2);
    expect(new Set(approvals).size).toBe(1);
    const sessionId = String(eventOf(stream.events, 'session').session_id);

    expect((await decide(approvals[0]!, 'APPROVED')).statusCode).toBe(200);
    mock.script(textReply(['Archived once.']));
    const continued = await continueChat(user, sessionId, approvals[0]!);
    const results = continued.events.filter((e) => e.event === 'tool_result').map((e) => e.data as { tool_call_id: string; status: string });
    expect(results.map((r) => r.tool_call_id).sort()).toEqual(['call_twice_a', 'call_twice_b']);
    expect(results.every((r) => r.status === 'completed')).toBe(true);
    expect(eventOf(continued.events, 'done')).toEqual({ status: 'completed' });
    expect(archived).toBe(before + 1);

    // Not stuck: the session takes a new message.
    mock.script(textReply(['Next?']));
    const next = await chat(t, user.headers, { message: 'thanks', session_id: sessionId });
    expect(eventOf(next.events, 'done')).toEqual({ status: 'completed' });
  });

  it("404 for an approval that is not this session's", async () => {
    const user = await createUser(t);
    mock.script(textReply(['hi']));
    const other = await chat(t, user.headers, { message: 'hello' });
    const response = await continueChat(user, String(eventOf(other.events, 'session').session_id), '00000000-0000-4000-8000-000000000000');
    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

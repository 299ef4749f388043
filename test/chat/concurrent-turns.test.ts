import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { createChatRepository, type NewMessage, type TurnStart } from '../../src/modules/chat/chat.repository.js';
import { createLlmRepository } from '../../src/modules/llm/llm.repository.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { eventOf, mockEnv, postStream, storedMessages, tokensOf } from './helpers.js';

let mock: MockLlm;
let t: TestApp;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  // A cloud model, so every prompt is redacted; a budget, so every turn start checks it.
  // The provider timeout is generous: on a loaded machine 90 turns at once may wait a while for their first token.
  t = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', LLM_DAILY_TOKEN_BUDGET: '100000000', LLM_REQUEST_TIMEOUT_MS: '90000' }) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  [alice, bob, carol] = [await createUser(t), await createUser(t), await createUser(t)];
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

const db = () => t.app.infra.database.db;
const repository = createChatRepository();

function turn(userId: string, sessionId: string, newTitle: string | null, at: string, model = 'openai/mock-model'): TurnStart {
  return { userId, sessionId, newTitle, model, messageId: randomUUID(), content: `content ${randomUUID()}`, tokenCount: 3, at: new Date(at) };
}

function answer(sessionId: string, at: string): NewMessage {
  return {
    id: randomUUID(),
    sessionId,
    role: 'assistant',
    content: `answer ${randomUUID()}`,
    toolCalls: null,
    toolCallId: null,
    toolName: null,
    status: 'completed',
    model: 'openai/mock-model',
    usage: { input_tokens: 5, output_tokens: 2 },
    tokenCount: 2,
    createdAt: new Date(at),
    completedAt: new Date(at),
  };
}

describe('grouped chat writes (one statement for many turns)', () => {
  it("stores each turn's message like startTurn would: new sessions, the user's own sessions, never another user's", async () => {
    const existing = randomUUID();
    expect(await repository.startTurn(db(), turn(alice.user.id, existing, 'title', '2026-12-01T10:00:00Z'))).toBe(true);
    const turns = [
      turn(alice.user.id, randomUUID(), 'a new one', '2026-12-01T10:01:00Z'),
      turn(alice.user.id, existing, null, '2026-12-01T10:02:00Z', 'openai/other'),
      // Bob guessing Alice's session id stores nothing, and does not stop Alice's turns in it.
      turn(bob.user.id, existing, null, '2026-12-01T10:09:00Z'),
      turn(alice.user.id, existing, null, '2026-12-01T10:03:00Z', 'openai/mock-model'),
      // A session that does not exist.
      turn(alice.user.id, randomUUID(), null, '2026-12-01T10:04:00Z'),
    ];
    expect(await repository.startTurns(db(), turns)).toEqual([true, true, false, true, false]);

    const stored = await storedMessages(t, existing);
    expect(stored.map((m) => m.content)).toEqual([expect.any(String), turns[1]!.content, turns[3]!.content]);
    const [session] = await queryRows<{ user_id: string; model: string; updated_at: Date | string }>(
      db(),
      sql`SELECT user_id, model, updated_at FROM chat_sessions WHERE id = ${existing}`,
    );
    // Touched once, by the latest of its turns; still Alice's.
    expect(session).toMatchObject({ user_id: alice.user.id, model: 'openai/mock-model' });
    expect(new Date(session!.updated_at).toISOString()).toBe('2026-12-01T10:03:00.000Z');
    const created = await storedMessages(t, turns[0]!.sessionId);
    expect(created.map((m) => [m.id, m.role, m.content])).toEqual([[turns[0]!.messageId, 'user', turns[0]!.content]]);
  });

  it('stores answers like insertIntoSession would, keeping the newest placeholder mapping given for a session', async () => {
    const session = randomUUID();
    expect(await repository.startTurn(db(), turn(alice.user.id, session, 'title', '2026-12-01T11:00:00Z'))).toBe(true);
    const items = [
      { message: answer(session, '2026-12-01T11:01:00Z'), placeholderVault: 'vault-1' },
      { message: answer(session, '2026-12-01T11:02:00Z'), placeholderVault: 'vault-2' },
      // Later, without a new mapping: the session keeps vault-2.
      { message: answer(session, '2026-12-01T11:03:00Z'), placeholderVault: null },
      // A session deleted while the answer streamed.
      { message: answer(randomUUID(), '2026-12-01T11:04:00Z'), placeholderVault: 'vault-x' },
    ];
    expect(await repository.insertManyIntoSessions(db(), items)).toEqual([true, true, true, false]);
    const stored = await storedMessages(t, session);
    expect(stored.slice(1).map((m) => [m.id, m.content, m.usage])).toEqual(
      items.slice(0, 3).map(({ message }) => [message.id, message.content, { input_tokens: 5, output_tokens: 2 }]),
    );
    const [row] = await queryRows<{ placeholder_vault: string; updated_at: Date | string }>(
      db(),
      sql`SELECT placeholder_vault, updated_at FROM chat_sessions WHERE id = ${session}`,
    );
    expect(row!.placeholder_vault).toBe('vault-2');
    expect(new Date(row!.updated_at).toISOString()).toBe('2026-12-01T11:03:00.000Z');
  });

  it("adds many model calls' usage in one statement, summed per user and day", async () => {
    const llm = createLlmRepository();
    const day = '2026-11-30';
    await llm.addUsage(db(), carol.user.id, day, 100, 10, new Date('2026-11-30T08:00:00Z'));
    await llm.addUsageMany(db(), [
      { userId: carol.user.id, day, inputTokens: 1, outputTokens: 2, now: new Date('2026-11-30T09:00:00Z') },
      { userId: carol.user.id, day, inputTokens: 3, outputTokens: 4, now: new Date('2026-11-30T09:01:00Z') },
      { userId: bob.user.id, day, inputTokens: 5, outputTokens: 6, now: new Date('2026-11-30T09:02:00Z') },
    ]);
    const rows = await queryRows<{ user_id: string; input_tokens: number | string; output_tokens: number | string; requests: number }>(
      db(),
      sql`SELECT user_id, input_tokens, output_tokens, requests FROM llm_usage_daily WHERE day = ${day} ORDER BY input_tokens DESC`,
    );
    expect(rows.map((r) => [r.user_id, Number(r.input_tokens), Number(r.output_tokens), Number(r.requests)])).toEqual([
      [carol.user.id, 104, 16, 3],
      [bob.user.id, 5, 6, 1],
    ]);
    expect(await llm.usageOn(db(), carol.user.id, day)).toBe(120);
  });
});

describe('many turns at once', () => {
  const TURNS = 90;

  it('ends every stream with done, stores every question and answer, audits each, and the chain verifies', { timeout: 120_000 }, async () => {
    mock.setDefault(textReply(['Hello ', 'there, ', 'Jane.']));
    const users = [alice, bob, carol];
    // A third of the turns continue one session per user, the rest open new ones.
    const sessions = new Map<string, string>();
    for (const user of users) {
      const opened = await postStream(t.app, '/api/v1/chat/stream', { message: 'first' }, user.headers);
      await opened.ended;
      sessions.set(user.user.id, String(eventOf(opened.events, 'session').session_id));
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: TURNS });
    const sent = Array.from({ length: TURNS }, (_, i) => {
      const user = users[i % users.length]!;
      const message = `Turn ${i}: please mail jane.doe@example.com`;
      return { user, message, body: i % 3 === 0 ? { message, session_id: sessions.get(user.user.id) } : { message } };
    });
    const streams = await Promise.all(sent.map((s) => postStream(t.app, '/api/v1/chat/stream', s.body, s.user.headers, agent)));
    await Promise.all(streams.map((s) => s.ended));
    agent.destroy();

    for (const [i, stream] of streams.entries()) {
      const error = stream.events.find((e) => e.event === 'error')?.data;
      expect(eventOf(stream.events, 'done'), `turn ${i}: ${JSON.stringify(error)}`).toEqual({ status: 'completed' });
      expect(tokensOf(stream.events)).toBe('Hello there, Jane.');
    }
    const userQueries = new Set((await auditEvents(t, 'USER_QUERY')).map((e) => e.details.message_id));
    const llmRequests = new Set((await auditEvents(t, 'LLM_REQUEST')).map((e) => e.details.message_id));
    for (const [i, stream] of streams.entries()) {
      const sessionId = String(eventOf(stream.events, 'session').session_id);
      const questionId = String(eventOf(stream.events, 'session').message_id);
      const answerId = String(eventOf(stream.events, 'message').id);
      const stored = await storedMessages(t, sessionId);
      const question = stored.find((m) => m.id === questionId);
      const reply = stored.find((m) => m.id === answerId);
      expect(question?.role).toBe('user');
      expect(reply).toMatchObject({ role: 'assistant', status: 'completed' });
      // Stored encrypted: read back through the API for the plain text.
      const detail = (await t.app.inject({ method: 'GET', url: `/api/v1/chat/sessions/${sessionId}`, headers: sent[i]!.user.headers })).json() as {
        messages: Array<{ id: string; content: string }>;
      };
      expect(detail.messages.find((m) => m.id === questionId)?.content).toBe(sent[i]!.message);
      expect(detail.messages.find((m) => m.id === answerId)?.content).toBe('Hello there, Jane.');
      expect(userQueries.has(questionId)).toBe(true);
      expect(llmRequests.has(answerId)).toBe(true);
    }
    // Every model call counted once in the users' daily usage.
    const [usage] = await queryRows<{ requests: number | string }>(db(), sql`SELECT sum(requests) AS requests FROM llm_usage_daily WHERE day = ${new Date().toISOString().slice(0, 10)}`);
    expect(Number(usage!.requests)).toBe(TURNS + users.length);
    const report = await t.app.auditTrail.verifier.verify();
    expect(report).toMatchObject({ valid: true, first_invalid_seq: null });
  });
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { eventually } from '../helpers/eventually.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { tablesContaining } from '../vault/helpers.js';
import {
  chat,
  eventOf,
  mockEnv,
  names,
  postStream,
  storedMessages,
  tokensOf,
} from './helpers.js';

const API = '/api/v1';
const TIMEOUT_MS = 2_000;
const BUDGET = 20_000;
const CHAT_LIMIT = 25;

let mock: MockLlm;
let t: TestApp;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  t = await buildTestApp({
    env: mockEnv(mock.url, {
      LLM_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      LLM_DAILY_TOKEN_BUDGET: String(BUDGET),
      CHAT_RATE_LIMIT_REQUESTS: String(CHAT_LIMIT),
    }),
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

describe('POST /chat/stream through each provider client', () => {
  it.each(['openai', 'ollama', 'anthropic'] as const)('%s: session, tokens, message, done, and both messages stored', async (provider) => {
    const user = await createUser(t);
    mock.script(textReply(['Hel', 'lo ', 'world'], { usage: [12, 3] }));

    const stream = await chat(t, user.headers, { message: 'Say hello', model: `${provider}/mock-model` });

    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['x-accel-buffering']).toBe('no');
    expect(stream.headers['cache-control']).toContain('no-cache');
    expect(names(stream.events)).toEqual(['session', 'token', 'token', 'token', 'message', 'done']);
    expect(tokensOf(stream.events)).toBe('Hello world');
    const session = eventOf(stream.events, 'session');
    const message = eventOf(stream.events, 'message');
    expect(message).toMatchObject({
      role: 'assistant',
      content: 'Hello world',
      model: `${provider}/mock-model`,
      usage: { input_tokens: 12, output_tokens: 3 },
      status: 'completed',
    });
    expect(message).not.toHaveProperty('context_truncated');
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'completed' });
    expect(mock.chatRequests()[0]!.wire).toBe(provider);

    const rows = await storedMessages(t, String(session.session_id));
    expect(rows.map((row) => [row.id, row.role, row.status])).toEqual([
      [session.message_id, 'user', 'completed'],
      [message.id, 'assistant', 'completed'],
    ]);
    expect(rows[1]!.usage).toEqual({ input_tokens: 12, output_tokens: 3 });
    expect(rows[1]!.model).toBe(`${provider}/mock-model`);
  });

  it('stores the user message and sends `session` before the model is called', async () => {
    const user = await createUser(t);
    mock.script({ steps: [{ type: 'delay', ms: 400 }, { type: 'text', text: 'late' }] });

    const stream = await postStream(t.app, `${API}/chat/stream`, { message: 'store me first' }, user.headers);
    await eventually(() => mock.chatRequests().length === 1);
    // The provider has the request but has not answered: the session event is already here, and the message is stored.
    await stream.until((events) => events.length > 0);
    expect(names(stream.events)).toEqual(['session']);
    const session = eventOf(stream.events, 'session');
    const rows = await storedMessages(t, String(session.session_id));
    expect(rows.map((row) => [row.id, row.role])).toEqual([[session.message_id, 'user']]);

    await stream.ended;
    expect(tokensOf(stream.events)).toBe('late');
  });

  it('continues a session with its history, on the session model', async () => {
    const user = await createUser(t);
    mock.script(textReply(['first answer']), textReply(['second answer']));
    const first = await chat(t, user.headers, { message: 'first question', model: 'ollama/mock-model' });
    const sessionId = String(eventOf(first.events, 'session').session_id);

    const second = await chat(t, user.headers, { message: 'second question', session_id: sessionId });

    expect(eventOf(second.events, 'session').session_id).toBe(sessionId);
    expect(eventOf(second.events, 'message').model).toBe('ollama/mock-model');
    const body = mock.chatRequests()[1]!.body as { messages: Array<{ role: string; content: string }> };
    expect(body.messages.filter((m) => m.role !== 'system').map((m) => [m.role, m.content])).toEqual([
      ['user', 'first question'],
      ['assistant', 'first answer'],
      ['user', 'second question'],
    ]);
  });
});

describe('when things go wrong', () => {
  it('a client disconnect closes the upstream connection at once and stores the partial answer as interrupted', async () => {
    const user = await createUser(t);
    mock.script(textReply(Array.from({ length: 60 }, (_, i) => `w${i} `), { chunkDelayMs: 50 }));

    const stream = await postStream(t.app, `${API}/chat/stream`, { message: 'talk for a while' }, user.headers);
    await stream.until((events) => events.filter((e) => e.event === 'token').length >= 3);
    const seen = tokensOf(stream.events);
    const closedAt = performance.now();
    stream.close();

    const upstream = mock.chatRequests()[0]!;
    await upstream.closed;
    expect(upstream.aborted).toBe(true);
    expect(upstream.abortedAt! - closedAt).toBeLessThan(1_000);
    // Far fewer chunks than scripted went out: the mock stopped when the connection closed.
    expect(upstream.outputWrittenAt.length).toBeLessThan(30);

    const sessionId = String(eventOf(stream.events, 'session').session_id);
    await eventually(async () => (await storedMessages(t, sessionId)).some((row) => row.role === 'assistant'));
    const detail = await t.app.inject({ method: 'GET', url: `${API}/chat/sessions/${sessionId}`, headers: user.headers });
    const assistant = (detail.json() as { messages: Array<{ role: string; status: string; content: string }> }).messages[1]!;
    expect(assistant.status).toBe('interrupted');
    expect(assistant.content.startsWith(seen)).toBe(true);
    expect(assistant.content.length).toBeLessThan(60 * 4);
    // LLM_REQUEST is recorded once the interrupted call has been wound up, which may come after the message.
    await eventually(async () => (await auditEvents(t, 'LLM_REQUEST')).some((row) => row.resource_id === sessionId));
    const [request] = (await auditEvents(t, 'LLM_REQUEST')).filter((row) => row.resource_id === sessionId);
    expect(request!.details.status).toBe('interrupted');
  });

  it('an upstream 500 becomes an error problem and done {status: error}', async () => {
    const user = await createUser(t);
    mock.script([{ type: 'error', status: 500, message: 'model exploded' }]);

    const stream = await chat(t, user.headers, { message: 'hi' });

    expect(names(stream.events)).toEqual(['session', 'error', 'done']);
    const problem = eventOf(stream.events, 'error');
    expect(problem).toMatchObject({ status: 502, title: 'Bad Gateway', dependency: 'openai', code: 'provider_error' });
    expect(String(problem.detail)).toContain('model exploded');
    expect(problem.request_id).toEqual(expect.any(String));
    expect(JSON.stringify(problem)).not.toMatch(/at .+\.(ts|js):\d+/);
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'error' });
    const rows = await storedMessages(t, String(eventOf(stream.events, 'session').session_id));
    expect(rows.map((row) => row.status)).toEqual(['completed', 'error']);
  });

  it('a provider that never answers times out into error + done, and the connection is closed', async () => {
    const user = await createUser(t);
    mock.script([{ type: 'hang' }]);

    const started = performance.now();
    const stream = await chat(t, user.headers, { message: 'anyone there?' });

    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 3_000);
    expect(names(stream.events)).toEqual(['session', 'error', 'done']);
    expect(eventOf(stream.events, 'error')).toMatchObject({ status: 503, code: 'provider_timeout', dependency: 'openai' });
    await mock.chatRequests()[0]!.closed;
    expect(mock.chatRequests()[0]!.aborted).toBe(true);
  });

  it('a stream that stalls mid-answer keeps the partial text, then error + done', async () => {
    const user = await createUser(t);
    mock.script([{ type: 'text', text: 'partial ' }, { type: 'hang' }]);

    const stream = await chat(t, user.headers, { message: 'go' });

    expect(names(stream.events)).toEqual(['session', 'token', 'error', 'done']);
    expect(eventOf(stream.events, 'error')).toMatchObject({ code: 'provider_timeout' });
    const rows = await storedMessages(t, String(eventOf(stream.events, 'session').session_id));
    expect(rows[1]!.status).toBe('error');
  });

  it('a dropped connection mid-answer becomes error + done', async () => {
    const user = await createUser(t);
    mock.script([{ type: 'text', text: 'so far ' }, { type: 'drop' }]);

    const stream = await chat(t, user.headers, { message: 'go' });

    // Whether the chunk before the drop is delivered depends on the socket timing; the ending does not.
    expect(names(stream.events)[0]).toBe('session');
    expect(names(stream.events).slice(-2)).toEqual(['error', 'done']);
    expect(eventOf(stream.events, 'error')).toMatchObject({ status: 503, code: 'provider_unavailable' });
  });
});

describe('refusals happen before the stream opens, as problem responses', () => {
  let user: TestUser;
  beforeAll(async () => {
    user = await createUser(t);
  });

  const post = (body: unknown, headers: Record<string, string> = user.headers) =>
    t.app.inject({ method: 'POST', url: `${API}/chat/stream`, payload: body as Record<string, unknown>, headers });

  it('401 without a token', async () => {
    const response = await post({ message: 'hi' }, {});
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('422 for an invalid body', async () => {
    for (const body of [{}, { message: '' }, { message: '   ' }, { message: 'hi', extra: 1 }, { message: 'hi', tools: 'all' }, { message: 'hi', temperature: 3 }]) {
      const response = await post(body);
      expect(response.statusCode, JSON.stringify(body)).toBe(422);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    expect((await post({ message: 'hi', session_id: 'not-a-uuid' })).statusCode).toBe(422);
  });

  it('422 for a model that cannot be used', async () => {
    for (const model of ['nope/x', 'gemini/gemini-2.0-flash', 'openai']) {
      const response = await post({ message: 'hi', model });
      expect(response.statusCode, model).toBe(422);
    }
    expect(mock.chatRequests()).toHaveLength(0);
  });

  it('422 naming the available models for a model neither registered nor listed by its provider, before any call', async () => {
    for (const model of ['ollama/nope', 'openai/not-a-model']) {
      const response = await post({ message: 'hi', model });
      expect(response.statusCode, model).toBe(422);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      const body = response.json();
      expect(body.detail).toContain(`${model} is not available`);
      expect(body.detail).toContain('ollama/mock-model');
      expect(body.available_models).toEqual(expect.arrayContaining(['ollama/mock-model', 'openai/mock-model', 'anthropic/mock-model']));
      expect(body.errors[0].pointer).toBe('/model');
    }
    expect(mock.chatRequests()).toHaveLength(0);
  });

  it("404 for another user's session or none at all, and nothing is stored", async () => {
    const owner = await createUser(t);
    mock.script(textReply(['mine']));
    const mine = await chat(t, owner.headers, { message: 'private' });
    const sessionId = String(eventOf(mine.events, 'session').session_id);

    expect((await post({ message: 'let me in', session_id: sessionId })).statusCode).toBe(404);
    expect((await post({ message: 'hi', session_id: '00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
    expect(await storedMessages(t, sessionId)).toHaveLength(2);
  });

  it('422 for a message longer than the model window', async () => {
    const response = await post({ message: 'word '.repeat(20_000), model: 'ollama/mock-model' });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors[0].pointer).toBe('/message');
  });

  it('429 per user after the chat rate limit, other users unaffected', async () => {
    const busy = await createUser(t);
    const other = await createUser(t);
    for (let i = 0; i < CHAT_LIMIT; i += 1) expect((await post({}, busy.headers)).statusCode).toBe(422);
    const limited = await post({}, busy.headers);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post({}, other.headers)).statusCode).toBe(422);
  });

  it('429 with Retry-After until midnight UTC once the daily token budget is spent', async () => {
    const spender = await createUser(t);
    mock.script(textReply(['expensive'], { usage: [BUDGET - 1_000, 1_500] }));
    const first = await chat(t, spender.headers, { message: 'spend it all' });
    expect(eventOf(first.events, 'done')).toEqual({ status: 'completed' });

    const refused = await post({ message: 'one more' }, spender.headers);
    expect(refused.statusCode).toBe(429);
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    expect(Math.abs(Number(refused.headers['retry-after']) - (midnight - now.getTime()) / 1000)).toBeLessThan(60);
    expect(refused.json().detail).toContain('budget');
    // Another user's budget is their own.
    mock.script(textReply(['fine']));
    expect(eventOf((await chat(t, user.headers, { message: 'still ok' })).events, 'done')).toEqual({ status: 'completed' });
  });
});

describe('context window', () => {
  it('drops the oldest turns to fit and says so in the message event', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    const user = await createUser(t);
    const config = (body: Record<string, unknown>) =>
      t.app.inject({ method: 'PUT', url: `${API}/llm/config`, payload: body, headers: admin.headers });
    expect((await config({ max_context_tokens: 400 })).statusCode).toBe(200);
    try {
      const sentence = (tag: string) => `${tag} ${'lorem ipsum dolor sit amet '.repeat(15)}`;
      mock.script(textReply(['ok one']), textReply(['ok two']), textReply(['ok three']));
      const first = await chat(t, user.headers, { message: sentence('ALPHA'), model: 'ollama/mock-model' });
      const sessionId = String(eventOf(first.events, 'session').session_id);
      expect(eventOf(first.events, 'message')).not.toHaveProperty('context_truncated');
      await chat(t, user.headers, { message: sentence('BRAVO'), session_id: sessionId });
      const third = await chat(t, user.headers, { message: sentence('CHARLIE'), session_id: sessionId });

      expect(eventOf(third.events, 'message').context_truncated).toBe(true);
      const sent = JSON.stringify(mock.chatRequests()[2]!.body);
      expect(sent).not.toContain('ALPHA');
      expect(sent).toContain('CHARLIE');
      const messages = (mock.chatRequests()[2]!.body as { messages: Array<{ role: string }> }).messages;
      expect(messages.find((m) => m.role !== 'system')!.role).toBe('user');
    } finally {
      await config({ max_context_tokens: null });
    }
  });
});

describe('storage and audit', () => {
  it('stores content encrypted: no table holds the text, which the API still returns', async () => {
    const user = await createUser(t);
    const secretText = `Quarterly numbers ${'Zq'.repeat(4)}${Date.now()}`;
    mock.script(textReply([`Answer about ${secretText}`]));
    const stream = await chat(t, user.headers, { message: `Tell me about ${secretText}` });
    const sessionId = String(eventOf(stream.events, 'session').session_id);

    const rows = await storedMessages(t, sessionId);
    for (const row of rows) {
      expect(row.content).toMatch(/^v1\./);
      expect(row.content).not.toContain(secretText);
    }
    const [session] = await queryRows<{ title: string }>(t.app.infra.database.db, sql`SELECT title FROM chat_sessions WHERE id = ${sessionId}`);
    expect(session!.title).toMatch(/^v1\./);
    expect(await tablesContaining(t, secretText)).toEqual([]);

    const detail = await t.app.inject({ method: 'GET', url: `${API}/chat/sessions/${sessionId}`, headers: user.headers });
    expect(detail.json().title).toBe(`Tell me about ${secretText}`);
    expect(detail.json().messages.map((m: { content: string }) => m.content)).toEqual([
      `Tell me about ${secretText}`,
      `Answer about ${secretText}`,
    ]);
  });

  it('audits USER_QUERY and LLM_REQUEST with model, tokens and latency, the prompt only as length and hash', async () => {
    const user = await createUser(t);
    const prompt = `Audit me ${Date.now()}`;
    mock.script(textReply(['fine'], { usage: [21, 2] }));
    const stream = await chat(t, user.headers, { message: prompt, model: 'anthropic/mock-model' });
    const sessionId = String(eventOf(stream.events, 'session').session_id);

    const [query] = (await auditEvents(t, 'USER_QUERY')).filter((row) => row.resource_id === sessionId);
    expect(query!.user_id).toBe(user.user.id);
    expect(query!.details).toMatchObject({
      message_id: eventOf(stream.events, 'session').message_id,
      model: 'anthropic/mock-model',
      provider: 'anthropic',
      prompt_length: prompt.length,
      prompt_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const [request] = (await auditEvents(t, 'LLM_REQUEST')).filter((row) => row.resource_id === sessionId);
    expect(request!.details).toMatchObject({
      message_id: eventOf(stream.events, 'message').id,
      model: 'anthropic/mock-model',
      provider: 'anthropic',
      is_local: false,
      status: 'completed',
      input_tokens: 21,
      output_tokens: 2,
      latency_ms: expect.any(Number),
      ttft_ms: expect.any(Number),
      prompt_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const [hits] = await queryRows<{ n: number }>(
      t.app.infra.database.db,
      sql`SELECT count(*)::int AS n FROM audit_events WHERE details::text LIKE ${`%${prompt}%`}`,
    );
    expect(hits!.n).toBe(0);
  });
});

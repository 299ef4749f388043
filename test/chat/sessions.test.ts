import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { chat, eventOf, mockEnv } from './helpers.js';

const API = '/api/v1';

let mock: MockLlm;
let t: TestApp;
let alice: TestUser;
let bob: TestUser;
const aliceSessions: string[] = [];

async function startSession(user: TestUser, message: string, answer: string): Promise<string> {
  mock.script(textReply([answer], { usage: [7, 2] }));
  const stream = await chat(t, user.headers, { message, model: 'ollama/mock-model' });
  return String(eventOf(stream.events, 'session').session_id);
}

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  t = await buildTestApp({ env: mockEnv(mock.url) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  alice = await createUser(t);
  bob = await createUser(t);
  for (const n of [1, 2, 3]) aliceSessions.push(await startSession(alice, `Question ${n}\nwith details`, `Answer ${n}`));
  await startSession(bob, 'Bob asks', 'Bob is answered');
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

const get = (url: string, user: TestUser) => t.app.inject({ method: 'GET', url: `${API}${url}`, headers: user.headers });

describe('chat sessions', () => {
  it("lists only the caller's sessions, latest first, page by page", async () => {
    const first = await get('/chat/sessions?limit=2', alice);
    expect(first.statusCode).toBe(200);
    const page1 = first.json() as { items: Array<{ id: string; title: string; model: string }>; next_cursor: string | null };
    expect(page1.items.map((s) => s.id)).toEqual([aliceSessions[2], aliceSessions[1]]);
    expect(page1.items[0]).toMatchObject({ title: 'Question 3', model: 'ollama/mock-model' });
    expect(page1.next_cursor).toEqual(expect.any(String));

    const page2 = (await get(`/chat/sessions?limit=2&cursor=${page1.next_cursor}`, alice)).json();
    expect(page2.items.map((s: { id: string }) => s.id)).toEqual([aliceSessions[0]]);
    expect(page2.next_cursor).toBeNull();

    const bobs = (await get('/chat/sessions', bob)).json();
    expect(bobs.items).toHaveLength(1);
    expect(bobs.items[0].title).toBe('Bob asks');
    expect((await get('/chat/sessions?cursor=garbage', alice)).statusCode).toBe(400);
  });

  it('moves a session to the top when it is continued', async () => {
    mock.script(textReply(['again']));
    await chat(t, alice.headers, { message: 'follow-up', session_id: aliceSessions[0] });
    const list = (await get('/chat/sessions?limit=1', alice)).json();
    expect(list.items[0].id).toBe(aliceSessions[0]);
  });

  it('returns a session with its messages decrypted', async () => {
    const response = await get(`/chat/sessions/${aliceSessions[1]}`, alice);
    expect(response.statusCode).toBe(200);
    const detail = response.json();
    expect(detail).toMatchObject({ id: aliceSessions[1], title: 'Question 2', model: 'ollama/mock-model' });
    expect(detail.messages).toEqual([
      expect.objectContaining({ role: 'user', content: 'Question 2\nwith details', status: 'completed', model: null, usage: null }),
      expect.objectContaining({
        role: 'assistant',
        content: 'Answer 2',
        status: 'completed',
        model: 'ollama/mock-model',
        usage: { input_tokens: 7, output_tokens: 2 },
        tool_calls: null,
      }),
    ]);
  });

  it("answers 404 for another user's session on every route, and 422/404 for malformed or unknown ids", async () => {
    const bobSession = (await get('/chat/sessions', bob)).json().items[0].id as string;
    expect((await get(`/chat/sessions/${bobSession}`, alice)).statusCode).toBe(404);
    expect((await get(`/chat/sessions/${bobSession}/export?format=markdown`, alice)).statusCode).toBe(404);
    const del = await t.app.inject({ method: 'DELETE', url: `${API}/chat/sessions/${bobSession}`, headers: alice.headers });
    expect(del.statusCode).toBe(404);
    expect((await get(`/chat/sessions/${bobSession}`, bob)).statusCode).toBe(200);
    expect((await get('/chat/sessions/not-a-uuid', alice)).statusCode).toBe(422);
    expect((await get('/chat/sessions/00000000-0000-4000-8000-000000000000', alice)).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: `${API}/chat/sessions` })).statusCode).toBe(401);
  });

  it('exports as JSON and as Markdown, as downloads', async () => {
    const json = await get(`/chat/sessions/${aliceSessions[1]}/export?format=json`, alice);
    expect(json.statusCode).toBe(200);
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.headers['content-disposition']).toBe(`attachment; filename="chat-${aliceSessions[1]}.json"`);
    const document = json.json();
    expect(document).toMatchObject({ id: aliceSessions[1], title: 'Question 2', exported_at: expect.any(String) });
    expect(document.messages.map((m: { content: string }) => m.content)).toEqual(['Question 2\nwith details', 'Answer 2']);

    const markdown = await get(`/chat/sessions/${aliceSessions[1]}/export?format=markdown`, alice);
    expect(markdown.statusCode).toBe(200);
    expect(markdown.headers['content-type']).toMatch(/^text\/markdown/);
    expect(markdown.headers['content-disposition']).toBe(`attachment; filename="chat-${aliceSessions[1]}.md"`);
    expect(markdown.body).toMatch(/^# Question 2\n/);
    expect(markdown.body).toContain('## User');
    expect(markdown.body).toContain('Question 2\nwith details');
    expect(markdown.body).toContain('## Assistant (ollama/mock-model)');
    expect(markdown.body).toContain('Answer 2');

    expect((await get(`/chat/sessions/${aliceSessions[1]}/export?format=pdf`, alice)).statusCode).toBe(422);
    const byDefault = await get(`/chat/sessions/${aliceSessions[1]}/export`, alice);
    expect(byDefault.headers['content-type']).toMatch(/^application\/json/);
  });

  it('deletes a session and really deletes its messages, audited without content', async () => {
    const id = aliceSessions[2]!;
    const del = await t.app.inject({ method: 'DELETE', url: `${API}/chat/sessions/${id}`, headers: alice.headers });
    expect(del.statusCode).toBe(204);

    expect((await get(`/chat/sessions/${id}`, alice)).statusCode).toBe(404);
    const [left] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM chat_messages WHERE session_id = ${id}`);
    expect(left!.n).toBe(0);
    const [deleted] = (await auditEvents(t, 'CHAT_SESSION_DELETED')).filter((row) => row.resource_id === id);
    expect(deleted).toMatchObject({ user_id: alice.user.id, details: { messages_deleted: 2 } });
    const again = await t.app.inject({ method: 'DELETE', url: `${API}/chat/sessions/${id}`, headers: alice.headers });
    expect(again.statusCode).toBe(404);
  });
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { generateKeyringEntry } from '../../src/lib/crypto/keyring.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { chat, eventOf, mockEnv } from './helpers.js';

const OLD = generateKeyringEntry('chat-old');
const NEW = generateKeyringEntry('chat-new');
const EMAIL = 'rotate.me@example.com';

let mock: MockLlm;
let before: TestApp;
let after: TestApp | undefined;
let admin: TestUser;
let user: TestUser;
let sessionId: string;

/** How many values of each chat column are under `keyId`, and how many there are. */
async function underKey(t: TestApp, keyId: string) {
  const prefix = `v1.${keyId}.`;
  const [row] = await queryRows<Record<string, number>>(
    t.app.infra.database.db,
    sql`SELECT
          (SELECT count(*)::int FROM chat_messages WHERE starts_with(content, ${prefix})) AS content,
          (SELECT count(*)::int FROM chat_messages WHERE starts_with(tool_calls, ${prefix})) AS tool_calls,
          (SELECT count(*)::int FROM chat_sessions WHERE starts_with(title, ${prefix})) AS title,
          (SELECT count(*)::int FROM chat_sessions WHERE starts_with(placeholder_vault, ${prefix})) AS placeholder_vault,
          (SELECT count(*)::int FROM chat_messages) AS messages,
          (SELECT count(*)::int FROM chat_messages WHERE tool_calls IS NOT NULL) AS with_tool_calls`,
  );
  return row!;
}

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  before = await buildTestApp({ env: mockEnv(mock.url), secrets: { encryptionKeys: OLD } });
  await before.app.listen({ port: 0, host: '127.0.0.1' });
  admin = await createUser(before, { role: 'ADMIN' });
  user = await createUser(before);
  // A cloud chat with personal data (a placeholder mapping) and a tool call (encrypted tool_calls).
  mock.script(toolCallReply('redact_text', { text: 'Mail [EMAIL_1]' }, { id: 'call_r' }), textReply(['Done for [EMAIL_1].']));
  const stream = await chat(before, user.headers, { message: `Redact the mail of ${EMAIL}` });
  sessionId = String(eventOf(stream.events, 'session').session_id);
  expect(eventOf(stream.events, 'done')).toEqual({ status: 'completed' });
});

afterAll(async () => {
  await after?.close();
  await before?.close();
  await mock?.close();
});

describe('key rotation', () => {
  it('rewraps every encrypted chat column, and the session reads and continues under the new key', async () => {
    const old = await underKey(before, 'chat-old');
    expect(old).toMatchObject({ content: 4, tool_calls: 1, title: 1, placeholder_vault: 1, messages: 4, with_tool_calls: 1 });

    after = await buildTestApp({ share: before, env: mockEnv(mock.url), secrets: { encryptionKeys: `${NEW},${OLD}` } });
    await after.app.listen({ port: 0, host: '127.0.0.1' });
    const rotated = await after.app.inject({ method: 'POST', url: '/api/v1/vault/rotate', headers: admin.headers });
    expect(rotated.statusCode, rotated.body).toBe(200);
    expect(await underKey(after, 'chat-new')).toMatchObject({ content: 4, tool_calls: 1, title: 1, placeholder_vault: 1 });

    const detail = await after.app.inject({ method: 'GET', url: `/api/v1/chat/sessions/${sessionId}`, headers: user.headers });
    expect(detail.statusCode).toBe(200);
    expect(detail.json().title).toBe(`Redact the mail of ${EMAIL}`);
    expect(detail.json().messages.at(-1).content).toBe(`Done for ${EMAIL}.`);

    // The placeholder mapping still opens: the same address keeps its placeholder.
    mock.requests.length = 0;
    mock.script(textReply(['ok']));
    const next = await chat(after, user.headers, { message: `Again ${EMAIL}`, session_id: sessionId });
    expect(next.status, next.text()).toBe(200);
    expect(eventOf(next.events, 'done')).toEqual({ status: 'completed' });
    expect(JSON.stringify(mock.chatRequests()[0]!.body)).toContain('Again [EMAIL_1]');
  });
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { tablesContaining } from '../vault/helpers.js';
import { chat, eventOf, mockEnv, names, tokensOf } from './helpers.js';

const API = '/api/v1';
// Valid by their checksums (Luhn, mod-97), so the redactor must catch them.
const EMAIL = 'jane.doe@example.com';
const OTHER_EMAIL = 'ops-team@example.org';
const PHONE = '+1 415 555 0134';
const IBAN = 'DE89 3704 0044 0532 0130 00';
const CARD = '4111 1111 1111 1111';
const ORIGINALS = [EMAIL, PHONE, IBAN, CARD];

let mock: MockLlm;
let t: TestApp;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  // OpenAI and Anthropic are cloud providers here; Ollama is local.
  t = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', REDACT_CLOUD_PROMPTS: 'true' }) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

const sentBody = (index: number): string => JSON.stringify(mock.chatRequests()[index]!.body);

describe('cloud providers never see personal data', () => {
  it('sends placeholders, streams the answer with the originals restored, and stores the originals encrypted', async () => {
    const user = await createUser(t);
    // The model refers to the placeholders, split across chunks the way tokens arrive.
    mock.script(textReply(['I will write to [EMA', 'IL_1] and call [PHO', 'NE_1', '] today.'], { usage: [40, 12] }));

    const stream = await chat(t, user.headers, {
      message: `Contact ${EMAIL} or ${PHONE}; pay to ${IBAN} with card ${CARD}.`,
      model: 'openai/mock-model',
    });

    const sent = sentBody(0);
    for (const original of ORIGINALS) expect(sent).not.toContain(original);
    expect(sent).toContain('Contact [EMAIL_1] or [PHONE_1]; pay to [IBAN_1] with card [CREDIT_CARD_1].');

    const expected = `I will write to ${EMAIL} and call ${PHONE} today.`;
    expect(tokensOf(stream.events)).toBe(expected);
    expect(stream.events.filter((e) => e.event === 'token').some((e) => String(e.data.delta).includes('['))).toBe(false);
    expect(eventOf(stream.events, 'message').content).toBe(expected);

    const sessionId = String(eventOf(stream.events, 'session').session_id);
    const detail = await t.app.inject({ method: 'GET', url: `${API}/chat/sessions/${sessionId}`, headers: user.headers });
    expect(detail.json().messages.map((m: { content: string }) => m.content)).toEqual([
      `Contact ${EMAIL} or ${PHONE}; pay to ${IBAN} with card ${CARD}.`,
      expected,
    ]);

    // The mapping is persisted with the session, encrypted; no table holds any original.
    const [session] = await queryRows<{ placeholder_vault: string | null }>(
      t.app.infra.database.db,
      sql`SELECT placeholder_vault FROM chat_sessions WHERE id = ${sessionId}`,
    );
    expect(session!.placeholder_vault).toMatch(/^v1\./);
    for (const original of ORIGINALS) expect(await tablesContaining(t, original)).toEqual([]);

    const [redacted] = (await auditEvents(t, 'PII_REDACTED')).filter((row) => row.resource_id === sessionId);
    expect(redacted!.details).toMatchObject({
      model: 'openai/mock-model',
      provider: 'openai',
      total: 4,
      entities: [
        { type: 'EMAIL', count: 1 },
        { type: 'PHONE', count: 1 },
        { type: 'CREDIT_CARD', count: 1 },
        { type: 'IBAN', count: 1 },
      ],
    });
  });

  it('keeps placeholders stable across turns and redacts the history it resends', async () => {
    const user = await createUser(t);
    mock.script(textReply(['Noted [EMAIL_1].']), textReply(['Both noted.']));
    const first = await chat(t, user.headers, { message: `My address is ${EMAIL}.`, model: 'anthropic/mock-model' });
    const sessionId = String(eventOf(first.events, 'session').session_id);

    await chat(t, user.headers, { message: `Also copy ${OTHER_EMAIL}, not ${EMAIL}.`, session_id: sessionId });

    const second = sentBody(1);
    expect(second).not.toContain(EMAIL);
    expect(second).not.toContain(OTHER_EMAIL);
    // The earlier answer (stored with the original restored) goes back out as the same placeholder.
    expect(second).toContain('My address is [EMAIL_1].');
    expect(second).toContain('Noted [EMAIL_1].');
    expect(second).toContain('Also copy [EMAIL_2], not [EMAIL_1].');
  });

  it('local providers get the original text and nothing is redacted or audited as such', async () => {
    const user = await createUser(t);
    mock.script(textReply(['Sure.']));
    const stream = await chat(t, user.headers, { message: `Email ${EMAIL} please.`, model: 'ollama/mock-model' });

    expect(names(stream.events)).toEqual(['session', 'token', 'message', 'done']);
    expect(sentBody(0)).toContain(`Email ${EMAIL} please.`);
    expect(JSON.stringify((mock.chatRequests()[0]!.body as { messages: unknown }).messages)).not.toContain('[EMAIL_');
    const sessionId = String(eventOf(stream.events, 'session').session_id);
    expect((await auditEvents(t, 'PII_REDACTED')).filter((row) => row.resource_id === sessionId)).toEqual([]);
    const [request] = (await auditEvents(t, 'LLM_REQUEST')).filter((row) => row.resource_id === sessionId);
    expect(request!.details).toMatchObject({ is_local: true, redacted: false });
  });
});

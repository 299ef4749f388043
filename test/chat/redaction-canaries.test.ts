import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { createTool, startSink, type Sink } from '../tools/helpers.js';
import { chat, eventOf, mockEnv, tokensOf } from './helpers.js';

const API = '/api/v1';
// Canaries no checksum can find: a name, a street address, and a 12-digit Maestro card (Luhn-valid).
const NAME = 'Šárka Ottová';
const ADDRESS = 'Hauptstraße 12, 10115 Berlin';
const CARD = '6759 6498 2648';
const CANARIES = [NAME, 'Ottová', 'Hauptstraße', CARD];

let mock: MockLlm;
let sink: Sink;
let t: TestApp;
let admin: TestUser;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  sink = await startSink();
  t = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', REDACT_CLOUD_PROMPTS: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  admin = await createUser(t, { role: 'ADMIN' });
  await createTool(t, admin, {
    name: 'lookup_customer',
    description: 'Looks a customer up',
    input_schema: { type: 'object', additionalProperties: false, properties: { id: { type: 'string' } } },
    requires_approval: false,
    implementation: { type: 'webhook', url: `${sink.url}/lookup` },
  });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
  await sink?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

const sentBody = (index: number): string => JSON.stringify(mock.chatRequests()[index]!.body);

function expectNoCanary(body: string): void {
  for (const canary of CANARIES) expect(body, `${canary} reached the cloud model`).not.toContain(canary);
}

describe('names, addresses and cards never reach a cloud model', () => {
  it('in the prompt, the session title and the history resent on the next turn; answers come back restored', async () => {
    const user = await createUser(t);
    mock.script(textReply(['Noted: [PERS', 'ON_1] at [LOCATION_1].']), textReply(['[PERSON_1] again.']));
    const message = `Hi, my name is ${NAME}.\nBilling address: ${ADDRESS}\nCard: ${CARD}`;
    const first = await chat(t, user.headers, { message, model: 'openai/mock-model' });

    const sent = sentBody(0);
    expectNoCanary(sent);
    expect(sent).toContain('Hi, my name is [PERSON_1].');
    expect(sent).toContain('Billing address: [LOCATION_1]');
    expect(sent).toContain('Card: [CREDIT_CARD_1]');
    // The user sees the originals, even with a placeholder split across deltas.
    expect(tokensOf(first.events)).toBe(`Noted: ${NAME} at ${ADDRESS}.`);

    // The title is the first line of the message: kept for the user, never sent.
    const sessionId = String(eventOf(first.events, 'session').session_id);
    const detail = await t.app.inject({ method: 'GET', url: `${API}/chat/sessions/${sessionId}`, headers: user.headers });
    expect(detail.json().title).toBe(`Hi, my name is ${NAME}.`);

    // "Ms. Ottová" is the same person: the same placeholder, in the new message and in the resent history.
    const second = await chat(t, user.headers, { message: 'Please greet Ms. Ottová.', session_id: sessionId });
    const resent = sentBody(1);
    expectNoCanary(resent);
    expect(resent).toContain('Please greet Ms. [PERSON_1].');
    expect(resent).toContain(`Noted: [PERSON_1] at [LOCATION_1].`);
    expect(tokensOf(second.events)).toBe(`${NAME} again.`);

    const redacted = (await auditEvents(t, 'PII_REDACTED')).filter((row) => row.resource_id === sessionId);
    expect(redacted[0]!.details).toMatchObject({
      entities: expect.arrayContaining([
        { type: 'PERSON', count: 1 },
        { type: 'LOCATION', count: 1 },
        { type: 'CREDIT_CARD', count: 1 },
      ]),
    });
  });

  it('in a tool result fed back to the model', async () => {
    const user = await createUser(t);
    sink.respond((_call, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ customer: { name: NAME, address: ADDRESS, card: CARD } }));
    });
    mock.script(toolCallReply('lookup_customer', { id: 'c-17' }, { id: 'call_lookup' }), textReply(['Found.']));
    const stream = await chat(t, user.headers, { message: 'Look up customer c-17', model: 'openai/mock-model' });
    expect(eventOf(stream.events, 'tool_result')).toMatchObject({ status: 'completed' });
    const second = sentBody(1);
    expectNoCanary(second);
    expect(second).toContain('[PERSON_1]');
    expect(second).toContain('[CREDIT_CARD_1]');
  });

  it('follows the policy set through /llm/config, and audits the change', async () => {
    const user = await createUser(t);
    const put = await t.app.inject({
      method: 'PUT',
      url: `${API}/llm/config`,
      headers: admin.headers,
      payload: { redact_types: ['CREDIT_CARD', 'EMAIL'] },
    });
    expect(put.statusCode).toBe(200);
    expect(put.json().redaction.redact_types).toEqual(['EMAIL', 'CREDIT_CARD']);
    try {
      mock.script(textReply(['Ok.']));
      await chat(t, user.headers, { message: `I am ${NAME}, card ${CARD}.`, model: 'openai/mock-model' });
      const sent = sentBody(0);
      expect(sent).toContain(NAME);
      expect(sent).not.toContain(CARD);
      const [change] = (await auditEvents(t, 'LLM_CONFIG_CHANGED')).filter((row) => JSON.stringify(row.details).includes('redact_types'));
      expect(change!.details).toMatchObject({ changes: { redact_types: { to: 'EMAIL,CREDIT_CARD' } } });
    } finally {
      const reset = await t.app.inject({ method: 'PUT', url: `${API}/llm/config`, headers: admin.headers, payload: { redact_types: null } });
      expect(reset.json().redaction.redact_types).toContain('PERSON');
    }
  });
});

describe('fail closed', () => {
  let tight: TestApp;

  beforeAll(async () => {
    tight = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', REDACT_CLOUD_PROMPTS: 'true', REDACTION_TIME_BUDGET_MS: '1' }) });
    await tight.app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await tight?.close();
  });

  it('refuses the cloud call with a clear error when detection exceeds its time budget', async () => {
    const user = await createUser(tight);
    mock.script(textReply(['should never be asked']));
    // ~16 kB of names and addresses (as much as the mock model's window takes): several milliseconds of detection.
    const line = `Name: ${NAME}, address: ${ADDRESS}, card ${CARD}. Dr. Patel met Jean-Luc Moreau of Acme GmbH in Lyon.\n`;
    const message = line.repeat(Math.floor(16_000 / line.length));
    const stream = await chat(tight, user.headers, { message, model: 'openai/mock-model' });
    expect(stream.status, stream.text()).toBe(200);
    expect(eventOf(stream.events, 'error')).toMatchObject({ status: 503, reason: 'timeout' });
    expect(eventOf(stream.events, 'done')).toEqual({ status: 'error' });
    expect(mock.chatRequests()).toHaveLength(0);
  });
});

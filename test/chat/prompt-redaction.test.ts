import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { createTool, startSink, type Sink } from '../tools/helpers.js';
import { chat, eventOf, mockEnv } from './helpers.js';

const API = '/api/v1';
// Each is valid by its checksum or shape (Luhn, SSN area rules, mod-97, an API key), so the redactor must catch it.
const CARD = '4000056655665556';
const SSN = '401-22-3344';
const IBAN = 'GB82 WEST 1234 5698 7654 32';
const API_KEY = 'sk-proj-Abc123Def456Ghi789Jkl0';
const EMAIL = 'jane.roe@example.com';
const TABBED = `Customers:\nJane Roe\t${CARD}\t${SSN}\t${IBAN}\t${API_KEY}\t${EMAIL}\n`;
// What an administrator wrote into a tool definition.
const ADMIN_EMAIL = 'payments-desk@example.org';
const ADMIN_IBAN = 'DE89 3704 0044 0532 0130 00';

let mock: MockLlm;
let sink: Sink;
let t: TestApp;
let admin: TestUser;
let manager: TestUser;

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  sink = await startSink();
  t = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'false', REDACT_CLOUD_PROMPTS: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  admin = await createUser(t, { role: 'ADMIN' });
  manager = await createUser(t, { role: 'MANAGER' });
  await createTool(t, admin, {
    name: 'export_customers',
    description: `Exports the customer table. Questions to ${ADMIN_EMAIL}; refunds go to ${ADMIN_IBAN}.`,
    input_schema: {
      type: 'object',
      additionalProperties: false,
      properties: { region: { type: 'string', description: `a region, e.g. the one of ${ADMIN_EMAIL}` } },
    },
    requires_approval: false,
    implementation: { type: 'webhook', url: `${sink.url}/export` },
  });
  await createTool(t, admin, {
    name: 'wire_refund',
    description: 'Wires a refund',
    input_schema: { type: 'object', additionalProperties: false, required: ['amount'], properties: { amount: { type: 'number' } } },
    requires_approval: true,
    implementation: { type: 'webhook', url: `${sink.url}/refund` },
  });
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
  await sink?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
  sink.respond((_call, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ table: TABBED }));
  });
});

const sentBody = (index: number): string => JSON.stringify(mock.chatRequests()[index]!.body);

function expectNoneOf(text: string, values: string[]): void {
  for (const value of values) expect(text, `${value} reached the cloud model`).not.toContain(value);
}

describe('everything in a cloud prompt is redacted', () => {
  it('tab- and newline-separated personal data in a tool result', async () => {
    const user = await createUser(t);
    mock.script(toolCallReply('export_customers', {}, { id: 'call_export' }), textReply(['Exported.']));

    const stream = await chat(t, user.headers, { message: 'Export the customers', model: 'openai/mock-model' });
    expect(eventOf(stream.events, 'tool_result')).toMatchObject({ status: 'completed', result: { table: TABBED } });

    const second = sentBody(1);
    expectNoneOf(second, [CARD, SSN, IBAN, API_KEY, EMAIL]);
    // The tool definitions took the first IBAN and e-mail placeholders; the row keeps its tabs around the others.
    expect(second).toMatch(/\[PERSON_\d\](\\\\t\[(CREDIT_CARD|SSN|IBAN|SECRET|EMAIL)_\d\]){5}/);
    expect(second).not.toContain('Jane Roe');
  });

  it('tool definitions and the system text, on every call', async () => {
    const user = await createUser(t);
    mock.script(textReply(['Fine.']));
    await chat(t, user.headers, { message: 'What can you do?', model: 'openai/mock-model' });
    const body = mock.chatRequests()[0]!.body as { tools?: Array<{ function: { name: string; description?: string } }> };
    const offered = body.tools?.find((tool) => tool.function.name === 'export_customers');
    expect(offered?.function.description).toBe('Exports the customer table. Questions to [EMAIL_1]; refunds go to [IBAN_1].');
    expectNoneOf(sentBody(0), [ADMIN_EMAIL, ADMIN_IBAN]);
  });

  it("a manager's multi-line rejection reason fed back by /chat/continue", async () => {
    const user = await createUser(t);
    mock.script(toolCallReply('wire_refund', { amount: 10 }, { id: 'call_refund' }), textReply(['Understood.']));
    const first = await chat(t, user.headers, { message: 'Refund 10', model: 'openai/mock-model' });
    const sessionId = String(eventOf(first.events, 'session').session_id);
    const approvalId = String(eventOf(first.events, 'approval_required').approval_id);
    const reason = `Wrong customer:\n\tJane Roe\t${SSN}\t${CARD}\n\t${EMAIL}`;
    const decided = await t.app.inject({
      method: 'POST',
      url: `${API}/approvals/${approvalId}/decide`,
      headers: manager.headers,
      payload: { decision: 'REJECTED', reason },
    });
    expect(decided.statusCode).toBe(200);

    const continued = await chat(t, user.headers, { session_id: sessionId, approval_id: approvalId }, `${API}/chat/continue`);
    expect(eventOf(continued.events, 'done')).toEqual({ status: 'completed' });
    const sent = sentBody(1);
    expectNoneOf(sent, [SSN, CARD, EMAIL]);
    expect(sent).toContain('[SSN_1]');
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, strongPassword, uniqueUsername, type TestUser } from '../helpers/users.js';

/**
 * Input a client can send that no column can hold or no reader expects: a NUL anywhere, control characters in
 * single-line text (names, titles), JSON nested deeper than anything the API takes. Each is a 422 problem pointing at
 * the field, decided before any handler runs — never a 500 from the database or a stack overflow.
 */
const API = '/api/v1';

type Problem = { status: number; errors?: { pointer: string; detail: string }[] };

describe('control characters and nesting depth in requests', () => {
  let t: TestApp;
  let admin: TestUser;
  let manager: TestUser;
  let analyst: TestUser;

  beforeAll(async () => {
    t = await buildTestApp();
    admin = await createUser(t, { role: 'ADMIN' });
    manager = await createUser(t, { role: 'MANAGER' });
    analyst = await createUser(t, { role: 'ANALYST' });
  });
  afterAll(async () => {
    await t.close();
  });

  const send = (method: 'POST' | 'PUT', url: string, user: TestUser | null, payload: unknown) =>
    t.app.inject({ method, url: `${API}${url}`, headers: { ...(user?.headers ?? {}), 'content-type': 'application/json' }, payload: JSON.stringify(payload) });

  function expectRefused(response: { statusCode: number; body: string }, pointer: string): void {
    expect(response.statusCode, response.body).toBe(422);
    const body = JSON.parse(response.body) as Problem;
    expect(body.errors?.map((error) => error.pointer)).toContain(pointer);
  }

  async function pendingApproval(): Promise<string> {
    const name = `hygiene_${randomUUID().slice(0, 8)}`;
    const tool = await send('POST', '/tools', admin, { name, description: 'gated', implementation: { type: 'builtin', builtin: 'redact_text' }, requires_approval: true });
    expect(tool.statusCode, tool.body).toBe(201);
    const call = await send('POST', `/tools/${name}/execute`, analyst, { args: { text: 'x' } });
    expect(call.statusCode, call.body).toBe(202);
    return (call.json() as { approval_id: string }).approval_id;
  }

  it('a NUL in any field the review found is a 422 on that field', async () => {
    expectRefused(await send('POST', '/auth/register', null, { username: uniqueUsername('nul'), email: `${randomUUID()}@example.com`, password: strongPassword(), full_name: 'Jane\u0000Roe' }), '/full_name');
    expectRefused(await send('PUT', '/auth/me', analyst, { full_name: 'Jane\u0000Roe' }), '/full_name');
    expectRefused(await send('POST', '/vault/secrets', admin, { name: `nul.${randomUUID().slice(0, 8)}`, value: 'v', description: 'a\u0000b' }), '/description');
    expectRefused(await send('POST', '/tools', admin, { name: `nul_${randomUUID().slice(0, 8)}`, description: 'a\u0000b', implementation: { type: 'builtin', builtin: 'redact_text' } }), '/description');
    expectRefused(await send('POST', '/notifications/broadcast', admin, { type: 'SYSTEM_MAINTENANCE', title: 'Down\u0000time', message: 'tonight' }), '/title');
    expectRefused(await send('POST', `/approvals/${await pendingApproval()}/decide`, manager, { decision: 'REJECTED', reason: 'no\u0000' }), '/reason');
  });

  it('a NUL anywhere else in a body, a key, a query or a path is refused too', async () => {
    expectRefused(await send('POST', '/tools/redact_text/execute', analyst, { args: { text: 'a\u0000b' } }), '/args/text');
    expectRefused(await send('POST', '/notifications/broadcast', admin, { type: 'SYSTEM_MAINTENANCE', title: 'Downtime', message: 'tonight', data: { 'k\u0000': 1 } }), '/data');
    const query = await t.app.inject({ method: 'GET', url: `${API}/users?q=a%00b`, headers: admin.headers });
    expectRefused(query, '/q');
    const path = await t.app.inject({ method: 'GET', url: `${API}/tools/a%00b`, headers: analyst.headers });
    expect(path.statusCode).toBe(422);
  });

  it('single-line text refuses line breaks and other control characters; multi-line text keeps \\n and \\t', async () => {
    expectRefused(await send('PUT', '/auth/me', analyst, { full_name: 'Jane\nRoe' }), '/full_name');
    expectRefused(await send('PUT', '/auth/me', analyst, { full_name: 'Jane\u001b[31mRoe' }), '/full_name');
    expectRefused(await send('POST', '/notifications/broadcast', admin, { type: 'SYSTEM_MAINTENANCE', title: 'Down\ntime', message: 'tonight' }), '/title');
    expectRefused(await send('POST', '/vault/secrets', admin, { name: `bell.${randomUUID().slice(0, 8)}`, value: 'v', description: 'ring\u0007' }), '/description');

    expect((await send('PUT', '/auth/me', analyst, { full_name: 'Jane Roe-Müller' })).statusCode).toBe(200);
    expect((await send('POST', '/vault/secrets', admin, { name: `multi.${randomUUID().slice(0, 8)}`, value: 'v', description: 'first line\n\tsecond line\r\n' })).statusCode).toBe(201);
    expect((await send('POST', '/notifications/broadcast', admin, { type: 'SYSTEM_MAINTENANCE', title: 'Downtime', message: 'tonight\nfrom 22:00' })).statusCode).toBe(202);
    const decided = await send('POST', `/approvals/${await pendingApproval()}/decide`, manager, { decision: 'REJECTED', reason: 'Not now:\n\t- budget' });
    expect(decided.statusCode, decided.body).toBe(200);
  });

  it('JSON nested deeper than the limit is a 422 before it is parsed into objects; ordinary nesting passes', async () => {
    const nested = (depth: number, leaf: unknown = 1) => `${'{"a":'.repeat(depth)}${JSON.stringify(leaf)}${'}'.repeat(depth)}`;
    const deepArgs = `{"args":{"text":"x","extra":${nested(20_000)}}}`;
    const raw = (url: string, user: TestUser, payload: string) =>
      t.app.inject({ method: 'POST', url: `${API}${url}`, headers: { ...user.headers, 'content-type': 'application/json' }, payload });
    expectRefused(await raw('/tools/redact_text/execute', analyst, deepArgs), '/');
    const deepData = `{"type":"SYSTEM_MAINTENANCE","title":"t","message":"m","data":{"x":${'['.repeat(50_000)}${']'.repeat(50_000)}}}`;
    expectRefused(await raw('/notifications/broadcast', admin, deepData), '/');
    // Brackets inside strings are text, not nesting.
    const bracesInText = await raw('/notifications/broadcast', admin, JSON.stringify({ type: 'SYSTEM_MAINTENANCE', title: 't', message: '{'.repeat(3_000), data: { nested: JSON.parse(nested(20)) } }));
    expect(bracesInText.statusCode, bracesInText.body).toBe(202);
    // Malformed JSON is still a 400.
    expect((await raw('/notifications/broadcast', admin, '{"type":')).statusCode).toBe(400);
  });
});

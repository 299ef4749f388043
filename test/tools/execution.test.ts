import { createHmac, timingSafeEqual } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, execute, executionRow, startSink, type Sink } from './helpers.js';

let t: TestApp;
let sink: Sink;
/** Not in the allowlist: anything reaching it is an egress leak. */
let outside: Sink;
let admin: TestUser;
let manager: TestUser;
let analyst: TestUser;
let otherAnalyst: TestUser;

beforeAll(async () => {
  sink = await startSink();
  outside = await startSink();
  t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort } });
  admin = await createUser(t, { role: 'ADMIN' });
  manager = await createUser(t, { role: 'MANAGER' });
  analyst = await createUser(t, { role: 'ANALYST' });
  otherAnalyst = await createUser(t, { role: 'ANALYST' });
});

afterAll(async () => {
  await t?.close();
  await sink?.close();
  await outside?.close();
});

const anyArgs = { type: 'object', additionalProperties: false, properties: { q: { type: 'string' } } };

function lookup(name: string, path: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, input_schema: anyArgs, implementation: { type: 'webhook', url: `${sink.url}${path}` }, ...extra };
}

function callsTo(path: string): number {
  return sink.calls.filter((call) => call.path === path).length;
}

describe('redact_text', () => {
  it('runs without approval and reports entities with offsets into the input', async () => {
    const text = 'Mail jane.doe@example.com or call +1 415 555 0100.';
    const response = await execute(t, analyst, 'redact_text', { text });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ status: 'completed', cached: false });
    expect(body.result.redacted_text).toContain('[EMAIL_1]');
    const email = (body.result.entities as { type: string; start: number; end: number }[]).find((entity) => entity.type === 'EMAIL')!;
    expect(text.slice(email.start, email.end)).toBe('jane.doe@example.com');

    const completed = (await auditEvents(t, 'TOOL_CALL_COMPLETED')).find((row) => row.resource_id === body.execution_id);
    expect(completed).toMatchObject({ user_id: analyst.user.id, details: { tool_name: 'redact_text', cached: false } });
    expect(JSON.stringify(completed?.details)).not.toContain('jane.doe');
    // Stored encrypted: the plaintext is in no column of the executions table.
    const [hits] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM tool_executions t WHERE t::text LIKE '%jane.doe%'`);
    expect(hits?.n).toBe(0);
  });

  it('answers 422 with JSON pointers for bad arguments, 404 for an unknown tool', async () => {
    const wrongType = await execute(t, analyst, 'redact_text', { text: 42 });
    expect(wrongType.statusCode).toBe(422);
    expect(wrongType.json().errors).toEqual([{ pointer: '/args/text', detail: 'must be string' }]);

    const missingAndExtra = await execute(t, analyst, 'redact_text', { txt: 'x' });
    expect(missingAndExtra.statusCode).toBe(422);
    const pointers = (missingAndExtra.json().errors as { pointer: string }[]).map((error) => error.pointer).sort();
    expect(pointers).toEqual(['/args/text', '/args/txt']);

    expect((await execute(t, analyst, 'made_up_tool', {})).statusCode).toBe(404);
    const noArgs = await t.app.inject({ method: 'POST', url: '/api/v1/tools/redact_text/execute', headers: analyst.headers, payload: { args: [] } });
    expect(noArgs.statusCode).toBe(422);
  });
});

describe('result cache', () => {
  it('serves a cached result to the same user only, never across users', async () => {
    let served = 0;
    sink.respond((call, response) => {
      if (call.path !== '/cached') {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
        return;
      }
      served += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ answer: `for-${String(call.headers['x-cdsa-execution-id'])}`, n: served }));
    });
    await createTool(t, admin, lookup('cached_lookup', '/cached', { cache_ttl_seconds: 300 }));

    const first = (await execute(t, analyst, 'cached_lookup', { q: 'same' })).json();
    const second = (await execute(t, analyst, 'cached_lookup', { q: 'same' })).json();
    expect(first).toMatchObject({ cached: false, result: { n: 1 } });
    expect(second).toMatchObject({ cached: true, result: first.result });
    expect(second.execution_id).not.toBe(first.execution_id);
    expect(callsTo('/cached')).toBe(1);

    const other = (await execute(t, otherAnalyst, 'cached_lookup', { q: 'same' })).json();
    expect(other).toMatchObject({ cached: false, result: { n: 2 } });
    expect(callsTo('/cached')).toBe(2);

    const differentArgs = (await execute(t, analyst, 'cached_lookup', { q: 'other' })).json();
    expect(differentArgs.cached).toBe(false);

    // A new version of the tool never serves the old version's results.
    await t.app.inject({ method: 'PUT', url: '/api/v1/tools/cached_lookup', headers: admin.headers, payload: { description: 'v2' } });
    expect((await execute(t, analyst, 'cached_lookup', { q: 'same' })).json().cached).toBe(false);
    sink.respond((_call, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
});

describe('webhook tools', () => {
  it('signs the exact body with the vault-held secret; the sink verifies it', async () => {
    const secret = 'whsec_Zt8qYw3JrV1mXk5pL0nB';
    const stored = await t.app.inject({ method: 'POST', url: '/api/v1/vault/secrets', headers: admin.headers, payload: { name: 'hook-signing', value: secret } });
    expect(stored.statusCode, stored.body).toBe(201);
    let verified: boolean | undefined;
    sink.respond((call, response) => {
      if (call.path === '/signed') {
        const header = String(call.headers['x-cdsa-signature'] ?? '');
        const expected = `sha256=${createHmac('sha256', secret).update(call.body).digest('hex')}`;
        verified = header.length === expected.length && timingSafeEqual(Buffer.from(header), Buffer.from(expected));
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await createTool(t, admin, lookup('signed_hook', '/signed', { implementation: { type: 'webhook', url: `${sink.url}/signed`, secret_name: 'hook-signing', headers: { 'X-Team': 'risk' } } }));
    const response = await execute(t, analyst, 'signed_hook', { q: 'hello' });
    expect(response.statusCode, response.body).toBe(200);
    expect(verified).toBe(true);
    const call = sink.calls.filter((entry) => entry.path === '/signed').at(-1)!;
    expect(JSON.parse(call.body)).toEqual({ tool: 'signed_hook', args: { q: 'hello' }, execution_id: response.json().execution_id });
    expect(call.headers['x-team']).toBe('risk');

    const everything = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM audit_events a WHERE a::text LIKE ${`%${secret}%`}`);
    expect(everything[0]?.n).toBe(0);
  });

  it('validates the result against output_schema; a mismatch is a stored failure (502)', async () => {
    sink.respond((_call, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":"not a boolean"}'));
    await createTool(t, admin, lookup('typed_hook', '/typed', { output_schema: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } } }));
    const response = await execute(t, analyst, 'typed_hook', {});
    expect(response.statusCode).toBe(502);
    const problem = response.json();
    expect(problem.detail).toMatch(/output schema/);
    const row = await executionRow(t, problem.execution_id as string);
    expect(row).toMatchObject({ status: 'failed' });
    const failed = (await auditEvents(t, 'TOOL_CALL_FAILED')).find((event) => event.resource_id === problem.execution_id);
    expect(failed?.details).toMatchObject({ error_code: 'invalid_output' });
    sink.respond((_call, reply) => reply.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });

  it('does not follow redirects, enforces the timeout and the response size limit', async () => {
    sink.respond((call, response) => {
      if (call.path === '/redirect') {
        response.writeHead(302, { location: `${outside.url}/stolen` }).end();
      } else if (call.path === '/big') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ blob: 'x'.repeat(5_000) }));
      } else if (call.path === '/slow') {
        // Never answers: the tool's deadline must end the call.
      } else {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }
    });
    await createTool(t, admin, lookup('redirecting_hook', '/redirect'));
    await createTool(t, admin, lookup('big_hook', '/big', { implementation: { type: 'webhook', url: `${sink.url}/big`, max_response_bytes: 1_024 } }));
    await createTool(t, admin, lookup('slow_hook', '/slow', { implementation: { type: 'webhook', url: `${sink.url}/slow`, timeout_ms: 300 } }));

    const redirected = await execute(t, analyst, 'redirecting_hook', {});
    expect(redirected.statusCode).toBe(502);
    expect(redirected.json().detail).toMatch(/redirect/);
    expect(outside.calls).toHaveLength(0);

    const big = await execute(t, analyst, 'big_hook', {});
    expect(big.statusCode).toBe(502);
    expect(big.json().detail).toMatch(/larger than 1024 bytes/);

    const slow = await execute(t, analyst, 'slow_hook', {});
    expect(slow.statusCode).toBe(502);
    expect(slow.json().detail).toMatch(/within 300 ms/);
    expect(await executionRow(t, slow.json().execution_id as string)).toMatchObject({ status: 'failed' });
    sink.respond((_call, reply) => reply.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });

  it('checks the allowlist again at call time (an instance with a narrower allowlist refuses)', async () => {
    await createTool(t, admin, lookup('allowlisted_hook', '/allowlisted'));
    const narrow = await buildTestApp({ share: t, env: { TOOL_HTTP_ALLOWLIST: 'api.example.com' } });
    try {
      const response = await narrow.app.inject({ method: 'POST', url: '/api/v1/tools/allowlisted_hook/execute', headers: analyst.headers, payload: { args: {} } });
      expect(response.statusCode).toBe(502);
      expect(response.json().detail).toMatch(/not in TOOL_HTTP_ALLOWLIST/);
      expect(callsTo('/allowlisted')).toBe(0);
    } finally {
      await narrow.close();
    }
  });
});

describe('http_request', () => {
  it('reaches only allowed hosts: anything else is refused before any approval is asked', async () => {
    const response = await execute(t, analyst, 'http_request', { url: `${outside.url}/x` });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toEqual([{ pointer: '/args/url', detail: `host ${outside.hostPort} is not in TOOL_HTTP_ALLOWLIST` }]);
    const ftp = await execute(t, analyst, 'http_request', { url: 'ftp://example.com/x' });
    expect(ftp.statusCode).toBe(422);
    expect(outside.calls).toHaveLength(0);
    const pending = await execute(t, analyst, 'http_request', { url: `${sink.url}/allowed` });
    expect(pending.statusCode).toBe(202);
  });

  it('sends the vault secret as the auth header, and keeps it out of the result, the execution and the audit trail', async () => {
    const token = 'tok_live_9f8e7d6c5b4a3210';
    await t.app.inject({ method: 'POST', url: '/api/v1/vault/secrets', headers: admin.headers, payload: { name: 'partner-api', value: token } });
    sink.respond((call, response) => {
      // A service that echoes the request headers back.
      response.writeHead(call.path === '/moved' ? 301 : 200, { 'content-type': 'application/json', ...(call.path === '/moved' ? { location: `${outside.url}/x` } : {}) });
      response.end(JSON.stringify({ seen: call.headers }));
    });
    const created = await createTool(t, admin, {
      name: 'partner_get',
      implementation: { type: 'builtin', builtin: 'http_request', secret_name: 'partner-api', auth_scheme: 'Token' },
      requires_approval: false,
    });
    const response = await execute(t, analyst, 'partner_get', { url: `${sink.url}/echo`, headers: { accept: 'application/json' } });
    expect(response.statusCode, response.body).toBe(200);
    const result = response.json().result as { status: number; body: { seen: Record<string, string> } };
    expect(result.status).toBe(200);
    expect(result.body.seen.authorization).toBe('Token [REDACTED]');
    expect(sink.calls.at(-1)!.headers.authorization).toBe(`Token ${token}`);
    expect(response.body).not.toContain(token);

    const stored = await t.app.inject({ method: 'GET', url: `/api/v1/tools/${created.id}/executions/${response.json().execution_id as string}`, headers: analyst.headers });
    expect(stored.body).not.toContain(token);
    const [audit] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM audit_events a WHERE a::text LIKE ${`%${token}%`}`);
    expect(audit?.n).toBe(0);

    // A call that carried a secret returns no response headers unless the output schema names them.
    const moved = await execute(t, analyst, 'partner_get', { url: `${sink.url}/moved` });
    expect(moved.json().result).toMatchObject({ status: 301, headers: {} });
    expect(outside.calls).toHaveLength(0);

    const forged = await execute(t, analyst, 'partner_get', { url: `${sink.url}/echo`, headers: { Authorization: 'Bearer mine' } });
    expect(forged.statusCode).toBe(422);
    sink.respond((_call, reply) => reply.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
});

describe('executions', () => {
  it('lists one’s own executions; approvers and admins see everyone’s; another user’s execution is 404', async () => {
    const mine = (await execute(t, analyst, 'redact_text', { text: 'mine' })).json();
    const theirs = (await execute(t, otherAnalyst, 'redact_text', { text: 'theirs' })).json();

    const list = await t.app.inject({ method: 'GET', url: '/api/v1/tools/redact_text/executions?limit=200', headers: analyst.headers });
    const ids = (list.json().items as { id: string; user_id: string }[]).map((item) => item.id);
    expect(ids).toContain(mine.execution_id);
    expect(ids).not.toContain(theirs.execution_id);

    for (const approver of [manager, admin]) {
      const all = await t.app.inject({ method: 'GET', url: '/api/v1/tools/redact_text/executions?limit=200', headers: approver.headers });
      expect((all.json().items as { id: string }[]).map((item) => item.id)).toEqual(expect.arrayContaining([mine.execution_id, theirs.execution_id]));
    }

    const foreign = await t.app.inject({ method: 'GET', url: `/api/v1/tools/redact_text/executions/${theirs.execution_id as string}`, headers: analyst.headers });
    expect(foreign.statusCode).toBe(404);
    const own = await t.app.inject({ method: 'GET', url: `/api/v1/tools/redact_text/executions/${mine.execution_id as string}`, headers: analyst.headers });
    expect(own.json()).toMatchObject({ status: 'completed', source: 'api', args: { text: 'mine' }, user_id: analyst.user.id });
    const wrongTool = await t.app.inject({ method: 'GET', url: `/api/v1/tools/http_request/executions/${mine.execution_id as string}`, headers: analyst.headers });
    expect(wrongTool.statusCode).toBe(404);
  });
});

import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { ToolRunError, type BuiltinTool } from '../../src/modules/tools/index.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, execute, startSink, type Sink } from './helpers.js';

const CANARY = `vault-canary-${randomBytes(9).toString('hex')}`;
const SENT = `Bearer ${CANARY}`;
const ENCODINGS: Record<string, (text: string) => string> = {
  raw: (text) => text,
  base64: (text) => Buffer.from(text).toString('base64'),
  base64url: (text) => Buffer.from(text).toString('base64url'),
  hex: (text) => Buffer.from(text).toString('hex'),
  url: (text) => encodeURIComponent(text),
  json: (text) => JSON.stringify(text).slice(1, -1),
};
const DECODERS: Record<string, (text: string) => string> = {
  raw: (text) => text,
  base64: (text) => Buffer.from(text, 'base64').toString('latin1'),
  base64url: (text) => Buffer.from(text, 'base64url').toString('latin1'),
  hex: (text) => Buffer.from(text, 'hex').toString('latin1'),
  url: (text) => decodeURIComponent(text),
  json: (text) => JSON.parse(`"${text}"`) as string,
};

/** Whether any string in `value` carries the canary, as written or in one of the encodings (decoded to check). */
function carriesCanary(value: unknown): boolean {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  // Four characters of the canary's random part are more than any leftover of a scrubbed encoding.
  const core = CANARY.slice('vault-canary-'.length + 2, -2);
  if (text.includes(core)) return true;
  for (const token of text.split(/[^A-Za-z0-9+/=_%.\\-]+/)) {
    for (const decode of Object.values(DECODERS)) {
      try {
        if (decode(token).includes(core)) return true;
      } catch {
        // not this encoding
      }
    }
  }
  return false;
}

let t: TestApp;
let sink: Sink;
let admin: TestUser;
let analyst: TestUser;
let errorLog: ReturnType<typeof vi.spyOn>;

const leaky: BuiltinTool = {
  name: 'leaky_client',
  description: 'A client library that puts its credential into its errors',
  inputSchema: { type: 'object', additionalProperties: false, required: ['mode'], properties: { mode: { type: 'string', enum: ['tool_error', 'crash'] } } },
  outputSchema: null,
  requiresApproval: false,
  options: ['secret_name'],
  seed: false,
  async run(args, context) {
    const secret = await context.useSecret(context.implementation.secret_name!);
    if (args.mode === 'tool_error') throw new ToolRunError('upstream_refused', `upstream refused Authorization ${Buffer.from(`Bearer ${secret}`).toString('base64')}`);
    throw new Error(`socket hang up while sending Authorization: Bearer ${secret} (${encodeURIComponent(secret)})`);
  },
};

beforeAll(async () => {
  sink = await startSink();
  t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort }, beforeReady: (app) => app.tools.registerBuiltin(leaky) });
  admin = await createUser(t, { role: 'ADMIN' });
  analyst = await createUser(t, { role: 'ANALYST' });
  const stored = await t.app.inject({ method: 'POST', url: '/api/v1/vault/secrets', headers: admin.headers, payload: { name: 'partner-echo', value: CANARY } });
  expect(stored.statusCode, stored.body).toBe(201);
  // An allowlisted service that echoes the Authorization header back, in every encoding, in its body and headers.
  sink.respond((call, response) => {
    const seen = String(call.headers.authorization ?? '');
    response.writeHead(200, {
      'content-type': 'application/json',
      etag: `"${ENCODINGS.base64!(seen)}"`,
      location: `/next?auth=${ENCODINGS.url!(seen)}`,
    });
    const echoed = Object.fromEntries(Object.entries(ENCODINGS).map(([name, encode]) => [name, encode(seen)]));
    response.end(JSON.stringify({ echoed, wrapped: `authorization=${ENCODINGS.base64!(`x-${seen}-y`)}` }));
  });
  errorLog = vi.spyOn(t.app.log, 'error');
});

afterAll(async () => {
  errorLog?.mockRestore();
  await t?.close();
  await sink?.close();
});

async function storedTexts(): Promise<string[]> {
  const rows = await queryRows<{ row: string }>(t.app.infra.database.db, sql`SELECT t::text AS row FROM tool_executions t`);
  const audit = await queryRows<{ row: string }>(t.app.infra.database.db, sql`SELECT details::text AS row FROM audit_events`);
  return [...rows, ...audit].map((r) => r.row);
}

describe('a vault secret echoed back encoded', () => {
  it('is scrubbed from the result and the stored execution in every common encoding; no headers come back', async () => {
    const tool = await createTool(t, admin, {
      name: 'partner_echo',
      implementation: { type: 'builtin', builtin: 'http_request', secret_name: 'partner-echo' },
      requires_approval: false,
    });
    const response = await execute(t, analyst, 'partner_echo', { url: `${sink.url}/echo` });
    expect(response.statusCode, response.body).toBe(200);
    expect(sink.calls.at(-1)!.headers.authorization).toBe(SENT);
    const result = response.json().result as { status: number; headers: Record<string, string>; body: { echoed: Record<string, string>; wrapped: string } };
    expect(result.status).toBe(200);
    expect(Object.keys(result.body.echoed).sort()).toEqual(Object.keys(ENCODINGS).sort());
    for (const [name, value] of Object.entries(result.body.echoed)) {
      expect(value, name).toContain('[REDACTED]');
      expect(carriesCanary(DECODERS[name]!(value.replace('[REDACTED]', ''))), name).toBe(false);
    }
    expect(carriesCanary(result)).toBe(false);
    // The call carried a secret and the output schema names no header: none is returned.
    expect(result.headers).toEqual({});

    const stored = await t.app.inject({ method: 'GET', url: `/api/v1/tools/${tool.id}/executions/${response.json().execution_id as string}`, headers: analyst.headers });
    expect(stored.statusCode).toBe(200);
    expect(carriesCanary(stored.json().result)).toBe(false);
    for (const text of await storedTexts()) expect(carriesCanary(text)).toBe(false);
  });

  it('returns the headers an output schema names, scrubbed', async () => {
    await createTool(t, admin, {
      name: 'partner_echo_location',
      implementation: { type: 'builtin', builtin: 'http_request', secret_name: 'partner-echo' },
      output_schema: {
        type: 'object',
        required: ['status', 'headers', 'body'],
        properties: { status: { type: 'integer' }, headers: { type: 'object', properties: { location: { type: 'string' } } }, body: {} },
      },
      requires_approval: false,
    });
    const response = await execute(t, analyst, 'partner_echo_location', { url: `${sink.url}/echo` });
    expect(response.statusCode, response.body).toBe(200);
    const headers = response.json().result.headers as Record<string, string>;
    expect(Object.keys(headers)).toEqual(['location']);
    expect(headers.location).toBe('/next?auth=Bearer%20[REDACTED]');

    // Without a secret, the usual headers still come back.
    await createTool(t, admin, { name: 'public_get', implementation: { type: 'builtin', builtin: 'http_request' }, requires_approval: false });
    const open = await execute(t, analyst, 'public_get', { url: `${sink.url}/echo` });
    expect(Object.keys(open.json().result.headers as object).sort()).toEqual(['content-type', 'etag', 'location']);
  });

  it('is scrubbed from errors, their stored form, the audit trail and the log', async () => {
    await createTool(t, admin, { name: 'leaky', implementation: { type: 'builtin', builtin: 'leaky_client', secret_name: 'partner-echo' }, requires_approval: false });
    errorLog.mockClear();
    const refused = await execute(t, analyst, 'leaky', { mode: 'tool_error' });
    expect(refused.statusCode).toBe(502);
    expect(refused.body).toContain('[REDACTED]');
    expect(carriesCanary(refused.json())).toBe(false);

    const crashed = await execute(t, analyst, 'leaky', { mode: 'crash' });
    expect(crashed.statusCode).toBe(502);
    expect(carriesCanary(crashed.json())).toBe(false);
    const logged = errorLog.mock.calls.map((call: unknown[]) => JSON.stringify(call[0], (_key, value: unknown) => (value instanceof Error ? { message: value.message, stack: value.stack } : value)));
    expect(logged.some((line: string) => line.includes('tool implementation failed unexpectedly') || line.includes('socket hang up'))).toBe(true);
    for (const line of logged) expect(carriesCanary(line)).toBe(false);

    for (const text of await storedTexts()) expect(carriesCanary(text)).toBe(false);
  });
});

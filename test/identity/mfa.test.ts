import { sql } from 'drizzle-orm';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { bearer, createUser, type TestUser } from '../helpers/users.js';
import { createTool, decide, execute, gatedWebhook, startSink, waitForExecution, type Sink } from '../tools/helpers.js';

/**
 * TOTP MFA end to end through the API, with MFA_REQUIRED_ROLES at its production default (MANAGER, ADMIN). The
 * clock (Date only) is moved forward by whole TOTP steps so that every code a test sends is a new one, and past the
 * step-up window where a test needs that; timers and I/O stay real.
 */

let t: TestApp;
let sink: Sink;

beforeAll(async () => {
  sink = await startSink();
  t = await buildTestApp({ env: { MFA_REQUIRED_ROLES: 'MANAGER,ADMIN', MFA_STEP_UP_SECONDS: '300', TOOL_HTTP_ALLOWLIST: sink.hostPort } });
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
});

afterAll(async () => {
  vi.useRealTimers();
  await t?.close();
  await sink?.close();
});

function advance(seconds: number): void {
  vi.setSystemTime(Date.now() + seconds * 1000);
}

/** A code for the next TOTP step: moves the clock one step on, so no code is ever sent twice by accident. */
async function freshCode(secret: string): Promise<string> {
  advance(30);
  return generate({ secret, epoch: Math.floor(Date.now() / 1000) });
}

const post = (url: string, headers: Record<string, string> | undefined, payload: Record<string, unknown> = {}) =>
  t.app.inject({ method: 'POST', url: `/api/v1${url}`, ...(headers ? { headers } : {}), payload });

interface Enrolled {
  secret: string;
  recoveryCodes: string[];
}

async function enrol(user: TestUser): Promise<Enrolled> {
  const started = await post('/auth/mfa/totp/enroll', user.headers);
  expect(started.statusCode, started.body).toBe(200);
  const { secret } = started.json<{ secret: string }>();
  const confirmed = await post('/auth/mfa/totp/confirm', user.headers, { code: await freshCode(secret) });
  expect(confirmed.statusCode, confirmed.body).toBe(200);
  return { secret, recoveryCodes: confirmed.json<{ recovery_codes: string[] }>().recovery_codes };
}

/** Password, then code: the user's new session (which counts as MFA-verified now). */
async function loginWithMfa(user: TestUser, secret: string): Promise<TestUser> {
  const first = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
  expect(first.statusCode, first.body).toBe(200);
  const { mfa_token } = first.json<{ mfa_token: string }>();
  const second = await post('/auth/mfa/verify', undefined, { mfa_token, code: await freshCode(secret) });
  expect(second.statusCode, second.body).toBe(200);
  const body = second.json<{ access_token: string; refresh_token: string }>();
  return { ...user, access_token: body.access_token, refresh_token: body.refresh_token, headers: bearer(body.access_token) };
}

function claimsOf(accessToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('TOTP enrolment', () => {
  it('returns a secret, an otpauth URI and a QR code; confirming gives ten recovery codes once; the secret is stored encrypted', async () => {
    const user = await createUser(t);
    const started = await post('/auth/mfa/totp/enroll', user.headers);
    expect(started.statusCode).toBe(200);
    expect(started.headers['cache-control']).toBe('no-store');
    const { secret, otpauth_uri, qr_data_url } = started.json<{ secret: string; otpauth_uri: string; qr_data_url: string }>();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(otpauth_uri).toMatch(/^otpauth:\/\/totp\/CDSA:/);
    expect(otpauth_uri).toContain(`secret=${secret}`);
    expect(qr_data_url).toMatch(/^data:image\/png;base64,/);

    const [stored] = await queryRows<{ secret_ciphertext: string; confirmed_at: Date | null }>(
      t.app.infra.database.db,
      sql`SELECT secret_ciphertext, confirmed_at FROM user_totp WHERE user_id = ${user.user.id}`,
    );
    expect(stored!.secret_ciphertext).not.toContain(secret);
    expect(stored!.confirmed_at).toBeNull();

    const wrong = await post('/auth/mfa/totp/confirm', user.headers, { code: '000000' });
    expect(wrong.statusCode).toBe(422);
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: user.headers });
    expect(me.json().mfa_enabled).toBe(false);

    const confirmed = await post('/auth/mfa/totp/confirm', user.headers, { code: await freshCode(secret) });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    const codes = confirmed.json<{ recovery_codes: string[] }>().recovery_codes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const hashes = await queryRows<{ code_hash: string }>(t.app.infra.database.db, sql`SELECT code_hash FROM recovery_codes WHERE user_id = ${user.user.id}`);
    expect(hashes).toHaveLength(10);
    for (const code of codes) expect(hashes.map((row) => row.code_hash)).not.toContain(code);

    const again = await post('/auth/mfa/totp/confirm', user.headers, { code: await freshCode(secret) });
    expect(again.statusCode).toBe(409);
    const after = await t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: user.headers });
    expect(after.json().mfa_enabled).toBe(true);
    const enrolled = (await auditEvents(t, 'MFA_ENROLLED')).filter((event) => event.user_id === user.user.id);
    expect(enrolled).toHaveLength(1);
    expect(JSON.stringify(enrolled[0]!.details)).not.toContain(secret);
    const failed = (await auditEvents(t, 'MFA_FAILED')).filter((event) => event.user_id === user.user.id);
    expect(failed.map((event) => event.details.purpose)).toEqual(['enrolment']);
  });
});

describe('login with a second factor', () => {
  it('answers mfa_required with a single-use token; a code completes it with amr otp; the same code is refused afterwards', async () => {
    const user = await createUser(t);
    const { secret } = await enrol(user);

    const first = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    expect(first.statusCode).toBe(200);
    const challenge = first.json<Record<string, unknown>>();
    expect(challenge).toMatchObject({ mfa_required: true, mfa_token: expect.any(String) });
    expect(challenge).not.toHaveProperty('access_token');

    const code = await freshCode(secret);
    const verified = await post('/auth/mfa/verify', undefined, { mfa_token: challenge.mfa_token, code });
    expect(verified.statusCode, verified.body).toBe(200);
    const tokens = verified.json<{ access_token: string; refresh_token: string; user: { mfa_enabled: boolean } }>();
    expect(claimsOf(tokens.access_token).amr).toEqual(['pwd', 'otp']);
    expect(tokens.user.mfa_enabled).toBe(true);
    // Refreshed tokens keep the session's methods.
    const refreshed = await post('/auth/refresh', undefined, { refresh_token: tokens.refresh_token });
    expect(claimsOf(refreshed.json<{ access_token: string }>().access_token).amr).toEqual(['pwd', 'otp']);

    // The challenge token is spent.
    const reusedToken = await post('/auth/mfa/verify', undefined, { mfa_token: challenge.mfa_token, code: await freshCode(secret) });
    expect(reusedToken.statusCode).toBe(401);

    // The same code within its window, on a new login: refused (replay).
    const second = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    const replay = await post('/auth/mfa/verify', undefined, { mfa_token: second.json().mfa_token, code });
    expect(replay.statusCode).toBe(401);
    // A wrong code leaves the challenge usable for a correct one.
    const wrong = await post('/auth/mfa/verify', undefined, { mfa_token: second.json().mfa_token, code: '123456' === code ? '654321' : '123456' });
    expect(wrong.statusCode).toBe(401);
    const ok = await post('/auth/mfa/verify', undefined, { mfa_token: second.json().mfa_token, code: await freshCode(secret) });
    expect(ok.statusCode, ok.body).toBe(200);

    const verifiedEvents = (await auditEvents(t, 'MFA_VERIFIED')).filter((event) => event.user_id === user.user.id);
    expect(verifiedEvents.map((event) => event.details)).toEqual([
      { purpose: 'login', method: 'totp' },
      { purpose: 'login', method: 'totp' },
    ]);
    expect((await auditEvents(t, 'MFA_FAILED')).filter((event) => event.user_id === user.user.id)).toHaveLength(2);
  });

  it('a recovery code signs in once only', async () => {
    const user = await createUser(t);
    const { recoveryCodes } = await enrol(user);
    const code = recoveryCodes[3]!;
    const first = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    const used = await post('/auth/mfa/verify', undefined, { mfa_token: first.json().mfa_token, recovery_code: code.toUpperCase() });
    expect(used.statusCode, used.body).toBe(200);
    expect(claimsOf(used.json<{ access_token: string }>().access_token).amr).toContain('otp');

    const second = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    const again = await post('/auth/mfa/verify', undefined, { mfa_token: second.json().mfa_token, recovery_code: code });
    expect(again.statusCode).toBe(401);
    const events = (await auditEvents(t, 'RECOVERY_CODE_USED')).filter((event) => event.user_id === user.user.id);
    expect(events).toHaveLength(1);
    expect(events[0]!.details).toEqual({ remaining: 9 });
  });

  it('throttles repeated wrong codes like failed logins (429), even with new challenges', async () => {
    const user = await createUser(t);
    const { secret } = await enrol(user);
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt += 1) {
      const login = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
      const response = await post('/auth/mfa/verify', undefined, { mfa_token: login.json().mfa_token, code: '000001' });
      statuses.push(response.statusCode);
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    // Even the right code waits out the window.
    const login = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    const right = await post('/auth/mfa/verify', undefined, { mfa_token: login.json().mfa_token, code: await freshCode(secret) });
    expect(right.statusCode).toBe(429);
  });

  it('removing the factor needs a fresh code; afterwards a password alone signs in again', async () => {
    const user = await createUser(t);
    const { secret } = await enrol(user);
    const wrong = await t.app.inject({ method: 'DELETE', url: '/api/v1/auth/mfa/totp', headers: user.headers, payload: { code: '000002' } });
    expect(wrong.statusCode).toBe(422);
    const removed = await t.app.inject({ method: 'DELETE', url: '/api/v1/auth/mfa/totp', headers: user.headers, payload: { code: await freshCode(secret) } });
    expect(removed.statusCode, removed.body).toBe(204);
    const login = await post('/auth/login', undefined, { username: user.user.username, password: user.password });
    expect(login.json()).toMatchObject({ access_token: expect.any(String), user: { mfa_enabled: false } });
    expect((await auditEvents(t, 'MFA_DISABLED')).filter((event) => event.user_id === user.user.id)).toHaveLength(1);
  });
});

describe('MFA_REQUIRED_ROLES', () => {
  it('blocks a manager without a second factor from everything but enrolment, then lets them in', async () => {
    const manager = await createUser(t, { role: 'MANAGER' });
    const blocked = await t.app.inject({ method: 'GET', url: '/api/v1/approvals', headers: manager.headers });
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json()).toMatchObject({ type: 'urn:cdsa:problem:mfa-enrollment-required', status: 403 });
    const chat = await t.app.inject({ method: 'GET', url: '/api/v1/notifications', headers: manager.headers });
    expect(chat.statusCode).toBe(403);
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: manager.headers });
    expect(me.statusCode).toBe(200);

    await enrol(manager);
    const allowed = await t.app.inject({ method: 'GET', url: '/api/v1/approvals', headers: manager.headers });
    expect(allowed.statusCode, allowed.body).toBe(200);
  });

  it('leaves analysts alone (not a required role)', async () => {
    const analyst = await createUser(t);
    const response = await t.app.inject({ method: 'GET', url: '/api/v1/notifications', headers: analyst.headers });
    expect(response.statusCode).toBe(200);
  });
});

describe('step-up for sensitive actions', () => {
  it('a manager decides an approval only with a recent second factor; the decision is recorded as MFA-verified', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    await enrol(admin);
    const analyst = await createUser(t);
    const managerAccount = await createUser(t, { role: 'MANAGER' });
    const { secret } = await enrol(managerAccount);
    const manager = await loginWithMfa(managerAccount, secret);

    await createTool(t, admin, gatedWebhook(sink, 'mfa_gated_transfer'));
    const vaultSecret = await post('/vault/secrets', admin.headers, { name: 'mfa-step-up-secret', value: 'tiger-lily-42' });
    expect(vaultSecret.statusCode, vaultSecret.body).toBe(201);
    const reveal = () => t.app.inject({ method: 'GET', url: `/api/v1/vault/secrets/${vaultSecret.json().id}`, headers: manager.headers });
    const pending = (await execute(t, analyst, 'mfa_gated_transfer', { amount: 10, to: 'acct-9' })).json<{ approval_id: string; execution_id: string }>();
    expect(pending.approval_id).toEqual(expect.any(String));

    // Past the step-up window since the login's verification.
    advance(301);
    const refused = await decide(t, manager, pending.approval_id, 'APPROVED');
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ type: 'urn:cdsa:problem:step-up-required', status: 401 });
    const hidden = await reveal();
    expect(hidden.statusCode).toBe(401);
    expect(hidden.body).not.toContain('tiger-lily-42');
    expect(sink.calls.filter((call) => call.path === '/hook')).toHaveLength(0);

    const wrongStepUp = await post('/auth/mfa/step-up', manager.headers, { code: '000003' });
    expect(wrongStepUp.statusCode).toBe(422);
    const stepUp = await post('/auth/mfa/step-up', manager.headers, { code: await freshCode(secret) });
    expect(stepUp.statusCode, stepUp.body).toBe(200);
    expect(stepUp.json()).toMatchObject({ expires_in: 300 });

    const revealed = await reveal();
    expect(revealed.statusCode, revealed.body).toBe(200);
    expect(revealed.json().value).toBe('tiger-lily-42');
    const approved = await decide(t, manager, pending.approval_id, 'APPROVED');
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json().status).toBe('APPROVED');
    await waitForExecution(t, pending.execution_id);
    expect(sink.calls.filter((call) => call.path === '/hook')).toHaveLength(1);

    const decision = (await auditEvents(t, 'APPROVAL_DECISION')).find((event) => event.resource_id === pending.approval_id);
    expect(decision!.details).toMatchObject({ decision: 'APPROVED', mfa_verified: true, mfa_verified_at: expect.any(String) });
    const stepUps = (await auditEvents(t, 'MFA_VERIFIED')).filter((event) => event.user_id === manager.user.id && event.details.purpose === 'step_up');
    expect(stepUps).toHaveLength(1);
  });

  it('role changes need a step-up; an analyst without a factor is not asked for one elsewhere', async () => {
    const adminAccount = await createUser(t, { role: 'ADMIN' });
    const { secret } = await enrol(adminAccount);
    const target = await createUser(t);
    advance(301);
    const patch = () =>
      t.app.inject({ method: 'PATCH', url: `/api/v1/users/${target.user.id}`, headers: adminAccount.headers, payload: { role: 'MANAGER' } });
    const refused = await patch();
    expect(refused.statusCode).toBe(401);
    expect(refused.json().type).toBe('urn:cdsa:problem:step-up-required');
    // Deactivating is not a role change.
    const other = await createUser(t);
    const deactivate = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${other.user.id}`, headers: adminAccount.headers, payload: { is_active: false } });
    expect(deactivate.statusCode, deactivate.body).toBe(200);

    expect((await post('/auth/mfa/step-up', adminAccount.headers, { code: await freshCode(secret) })).statusCode).toBe(200);
    const changed = await patch();
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json().role).toBe('MANAGER');
  });
});

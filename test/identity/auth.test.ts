import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { bearer, createUser, login, strongPassword, uniqueUsername } from '../helpers/users.js';

const API = '/api/v1';

function withoutRequestId(body: Record<string, unknown>): Record<string, unknown> {
  const { request_id: _id, ...rest } = body;
  return rest;
}

describe('registration', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  const register = (payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url: `${API}/auth/register`, payload });

  it('creates an ANALYST and never returns internal fields', async () => {
    const username = uniqueUsername('reg');
    const response = await register({ username, email: `${username}@Example.test`, password: strongPassword(), full_name: 'Ada L' });
    expect(response.statusCode, response.body).toBe(201);
    const user = response.json();
    expect(user).toMatchObject({ username, email: `${username}@example.test`, full_name: 'Ada L', role: 'ANALYST', is_active: true, last_login_at: null });
    expect(Object.keys(user).sort()).toEqual(['created_at', 'email', 'full_name', 'id', 'is_active', 'last_login_at', 'mfa_enabled', 'role', 'updated_at', 'username']);
    expect(response.body).not.toMatch(/password|hash/i);
    const [event] = (await auditEvents(t, 'USER_REGISTERED')).filter((row) => row.user_id === user.id);
    expect(event?.details).toMatchObject({ username, role: 'ANALYST' });
  });

  it.each([
    ['role', 'ADMIN'],
    ['is_active', false],
    ['id', '7d8e9f00-0000-4000-8000-000000000000'],
    ['password_hash', 'x'],
  ])('rejects the mass-assignment field %s with 422 and a pointer to it', async (field, value) => {
    const username = uniqueUsername('mass');
    const response = await register({ username, email: `${username}@example.test`, password: strongPassword(), [field]: value });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toContainEqual({ pointer: `/${field}`, detail: 'is not an allowed field' });
    const login = await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username, password: 'whatever-password' } });
    expect(login.statusCode).toBe(401);
  });

  it('refuses duplicates (username case-insensitively, e-mail) with 409', async () => {
    const username = uniqueUsername('dup');
    expect((await register({ username, email: `${username}@example.test`, password: strongPassword() })).statusCode).toBe(201);
    expect((await register({ username: username.toUpperCase(), email: `other-${username}@example.test`, password: strongPassword() })).statusCode).toBe(409);
    expect((await register({ username: `${username}x`, email: `${username.toUpperCase()}@EXAMPLE.TEST`, password: strongPassword() })).statusCode).toBe(409);
  });

  it.each([
    ['short', 'Sh0rt-pass', 'at least 12 characters'],
    ['common', 'Password1234', 'too common'],
    ['common keyboard walk', 'qwertyuiop123', 'too common'],
    ['the username', '__USERNAME__', 'same as the username'],
    ['the e-mail', '__EMAIL__', 'same as the username or e-mail'],
    ['repetitive', 'abababababababab', 'different characters'],
  ])('rejects a %s password with a clear 422', async (_label, password, message) => {
    const username = uniqueUsername('pw');
    const email = `${username}@example.test`;
    const actual = password === '__USERNAME__' ? username.toUpperCase() : password === '__EMAIL__' ? email : password;
    const response = await register({ username, email, password: actual });
    expect(response.statusCode).toBe(422);
    const [error] = response.json().errors;
    expect(error.pointer).toBe('/password');
    expect(error.detail).toContain(message);
  });

  it('rejects a password longer than 128 characters', async () => {
    const username = uniqueUsername('long');
    const response = await register({ username, email: `${username}@example.test`, password: `${strongPassword()}${'x'.repeat(128)}` });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors[0].pointer).toBe('/password');
  });
});

describe('closed registration', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { REGISTRATION_MODE: 'closed' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 403, while an admin can still create users', async () => {
    const username = uniqueUsername('closed');
    const payload = { username, email: `${username}@example.test`, password: strongPassword() };
    const response = await t.app.inject({ method: 'POST', url: `${API}/auth/register`, payload });
    expect(response.statusCode).toBe(403);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const admin = await createUser(t, { role: 'ADMIN' });
    const created = await t.app.inject({ method: 'POST', url: `${API}/users`, headers: admin.headers, payload: { ...payload, role: 'MANAGER' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().role).toBe('MANAGER');
    await expect(login(t, username, payload.password)).resolves.toMatchObject({ user: { role: 'MANAGER' } });
  });
});

describe('login', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { LOGIN_MAX_FAILURES: '3', LOGIN_MAX_CLIENT_FAILURES: '1000' } });
  });
  afterAll(async () => {
    await t.close();
  });

  const attempt = (username: string, password: string, remoteAddress = '127.0.0.1') =>
    t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username, password }, remoteAddress });

  it('signs in by username or e-mail and returns the token pair and the user', async () => {
    const alice = await createUser(t, { username: uniqueUsername('Alice') });
    for (const identifier of [alice.user.username, alice.user.username.toLowerCase(), alice.user.email.toUpperCase()]) {
      const response = await attempt(identifier, alice.password);
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json();
      expect(body).toMatchObject({ token_type: 'bearer', expires_in: 900, user: { id: alice.user.id, role: 'ANALYST' } });
      expect(body.access_token.split('.')).toHaveLength(3);
      expect(body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(body.user.last_login_at).not.toBeNull();
      expect(response.body).not.toMatch(/password|hash/i);
    }
    const events = (await auditEvents(t, 'LOGIN_SUCCEEDED')).filter((row) => row.user_id === alice.user.id);
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(events.every((row) => row.session_id !== null)).toBe(true);
  });

  it('answers the same 401 body for an unknown user, a wrong password and an inactive account', async () => {
    const bob = await createUser(t);
    const inactive = await createUser(t);
    const admin = await createUser(t, { role: 'ADMIN' });
    await t.app.inject({ method: 'PATCH', url: `${API}/users/${inactive.user.id}`, headers: admin.headers, payload: { is_active: false } });

    const unknown = await attempt(uniqueUsername('ghost'), 'Some-long-password-1');
    const wrong = await attempt(bob.user.username, 'Some-long-password-1');
    const disabled = await attempt(inactive.user.username, inactive.password);
    for (const response of [unknown, wrong, disabled]) {
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    }
    expect(withoutRequestId(wrong.json())).toEqual(withoutRequestId(unknown.json()));
    expect(withoutRequestId(disabled.json())).toEqual(withoutRequestId(unknown.json()));

    const failures = await auditEvents(t, 'LOGIN_FAILED');
    expect(failures.map((row) => row.details.reason)).toEqual(expect.arrayContaining(['unknown_user', 'bad_password', 'inactive_user']));
    expect(JSON.stringify(failures)).not.toContain('Some-long-password-1');
    expect(JSON.stringify(failures)).not.toContain(inactive.password);
  });

  it('throttles an account after LOGIN_MAX_FAILURES failures with 429 and Retry-After, even for the right password', async () => {
    const carol = await createUser(t);
    for (let i = 0; i < 3; i += 1) expect((await attempt(carol.user.username, 'Wrong-password-123', `10.0.0.${i + 1}`)).statusCode).toBe(401);
    const blocked = await attempt(carol.user.username, carol.password, '10.0.0.9');
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(900);
    expect((await attempt(carol.user.email, carol.password, '10.0.0.10')).statusCode).toBe(429);
    const throttled = (await auditEvents(t, 'LOGIN_FAILED')).filter((row) => row.user_id === carol.user.id && row.details.reason === 'throttled_account');
    expect(throttled.length).toBeGreaterThanOrEqual(1);
    // Other accounts are unaffected.
    const dave = await createUser(t);
    expect((await attempt(dave.user.username, dave.password, '10.0.0.9')).statusCode).toBe(200);
  });

  it('throttles unknown accounts the same way, so a 429 does not reveal whether an account exists', async () => {
    const ghost = uniqueUsername('ghost');
    for (let i = 0; i < 3; i += 1) expect((await attempt(ghost, 'Wrong-password-123')).statusCode).toBe(401);
    expect((await attempt(ghost, 'Wrong-password-123')).statusCode).toBe(429);
  });

  it('a success clears the account failures', async () => {
    const erin = await createUser(t);
    for (let i = 0; i < 2; i += 1) expect((await attempt(erin.user.username, 'Wrong-password-123')).statusCode).toBe(401);
    expect((await attempt(erin.user.username, erin.password)).statusCode).toBe(200);
    for (let i = 0; i < 2; i += 1) expect((await attempt(erin.user.username, 'Wrong-password-123')).statusCode).toBe(401);
    expect((await attempt(erin.user.username, erin.password)).statusCode).toBe(200);
  });
});

describe('per-client throttling', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { LOGIN_MAX_FAILURES: '100', LOGIN_MAX_CLIENT_FAILURES: '4' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 429 to a client that failed too often, whichever accounts it tries', async () => {
    const frank = await createUser(t);
    const attempt = (username: string, password: string, remoteAddress: string) =>
      t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username, password }, remoteAddress });
    for (let i = 0; i < 4; i += 1) {
      expect((await attempt(uniqueUsername('spray'), 'Wrong-password-123', '192.0.2.7')).statusCode).toBe(401);
    }
    const blocked = await attempt(frank.user.username, frank.password, '192.0.2.7');
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await attempt(frank.user.username, frank.password, '192.0.2.8')).statusCode).toBe(200);
  });

  it('counts concurrent attempts before the password is checked: no more checks than the limit get through', async () => {
    const attempts = await Promise.all(
      Array.from({ length: 12 }, () =>
        t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username: uniqueUsername('burst'), password: 'Wrong-password-123' }, remoteAddress: '192.0.2.9' }),
      ),
    );
    const statuses = attempts.map((response) => response.statusCode).sort();
    expect(statuses).toEqual([...Array(4).fill(401), ...Array(8).fill(429)]);
  });

  it('successful logins do not use up the client allowance', async () => {
    const gina = await createUser(t);
    const attempt = (password: string) =>
      t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username: gina.user.username, password }, remoteAddress: '192.0.2.10' });
    for (let i = 0; i < 6; i += 1) expect((await attempt(gina.password)).statusCode).toBe(200);
    for (let i = 0; i < 4; i += 1) expect((await attempt('Wrong-password-123')).statusCode).toBe(401);
    expect((await attempt(gina.password)).statusCode).toBe(429);
  });
});

describe('tokens and sessions', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  const me = (headers: Record<string, string>) => t.app.inject({ method: 'GET', url: `${API}/auth/me`, headers });
  const refresh = (refresh_token: string) => t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token } });

  it('GET /auth/me returns the caller; no token is 401 with WWW-Authenticate', async () => {
    const user = await createUser(t, { role: 'MANAGER' });
    const response = await me(user.headers);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: user.user.id, role: 'MANAGER' });
    const anonymous = await me({});
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');
    expect((await me({ authorization: 'Basic abc' })).statusCode).toBe(401);
  });

  it('rotates refresh tokens: each works once and yields a working pair', async () => {
    const user = await createUser(t);
    const first = await refresh(user.refresh_token);
    expect(first.statusCode, first.body).toBe(200);
    const pair = first.json();
    expect(pair).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    expect(pair.refresh_token).not.toBe(user.refresh_token);
    expect((await me(bearer(pair.access_token))).statusCode).toBe(200);
    const second = await refresh(pair.refresh_token);
    expect(second.statusCode).toBe(200);
    expect((await me(bearer(second.json().access_token))).statusCode).toBe(200);
  });

  it('reuse of a refresh token revokes the whole session and is audited', async () => {
    const user = await createUser(t);
    const rotated = (await refresh(user.refresh_token)).json();
    const newer = (await refresh(rotated.refresh_token)).json();
    // The stolen, already-used first token comes back.
    const reuse = await refresh(user.refresh_token);
    expect(reuse.statusCode).toBe(401);
    // Every token of that login is dead: the original and later access tokens, and the newest refresh token.
    expect((await me(user.headers)).statusCode).toBe(401);
    expect((await me(bearer(rotated.access_token))).statusCode).toBe(401);
    expect((await me(bearer(newer.access_token))).statusCode).toBe(401);
    expect((await refresh(newer.refresh_token)).statusCode).toBe(401);
    const [event] = (await auditEvents(t, 'TOKEN_REUSE_DETECTED')).filter((row) => row.user_id === user.user.id);
    expect(event).toBeDefined();
    expect(JSON.stringify(event)).not.toContain(user.refresh_token);
    // Other sessions of the same user live on.
    const other = await login(t, user.user.username, user.password);
    expect((await me(bearer(other.access_token))).statusCode).toBe(200);
    // The user is alerted.
    const alerts = await t.app.inject({ method: 'GET', url: `${API}/notifications`, headers: bearer(other.access_token) });
    expect(alerts.statusCode).toBe(200);
    expect(alerts.json().items).toContainEqual(expect.objectContaining({ type: 'SECURITY_ALERT', priority: 'high' }));
  });

  it('of concurrent refreshes with the same token at most one succeeds', async () => {
    const user = await createUser(t);
    const results = await Promise.all(Array.from({ length: 5 }, () => refresh(user.refresh_token)));
    const ok = results.filter((response) => response.statusCode === 200);
    expect(ok.length).toBeLessThanOrEqual(1);
    expect(results.every((response) => response.statusCode === 200 || response.statusCode === 401)).toBe(true);
  });

  it('unknown and malformed refresh tokens are 401', async () => {
    expect((await refresh('A'.repeat(43))).statusCode).toBe(401);
    const user = await createUser(t);
    // An access token is not a refresh token.
    expect((await refresh(user.access_token)).statusCode).toBe(401);
  });

  it('a refresh token is not an access token', async () => {
    const user = await createUser(t);
    expect((await me(bearer(user.refresh_token))).statusCode).toBe(401);
  });

  it('logout kills the access token at once, and the refresh token', async () => {
    const user = await createUser(t);
    expect((await me(user.headers)).statusCode).toBe(200);
    const out = await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: user.headers });
    expect(out.statusCode).toBe(204);
    expect((await me(user.headers)).statusCode).toBe(401);
    expect((await refresh(user.refresh_token)).statusCode).toBe(401);
    const [event] = (await auditEvents(t, 'LOGOUT')).filter((row) => row.user_id === user.user.id);
    expect(event?.session_id).toBeTruthy();
  });

  it('enforces the absolute session lifetime on access and refresh', async () => {
    const user = await createUser(t);
    const fresh = await login(t, user.user.username, user.password);
    const [session] = await queryRows<{ session_id: string }>(
      t.app.infra.database.db,
      sql`select session_id from refresh_tokens where token_hash = encode(sha256(convert_to(${fresh.refresh_token}, 'UTF8')), 'hex')`,
    );
    expect(session).toBeDefined();
    await t.app.infra.database.db.execute(sql`update sessions set expires_at = now() - interval '1 second' where id = ${session!.session_id}`);
    expect((await refresh(fresh.refresh_token)).statusCode).toBe(401);
    expect((await me(bearer(fresh.access_token))).statusCode).toBe(401);
  });

  it('refuses access tokens in URLs', async () => {
    const user = await createUser(t);
    const response = await t.app.inject({ method: 'GET', url: `${API}/auth/me?access_token=${user.access_token}` });
    expect(response.statusCode).toBe(401);
    expect(response.json().detail).toContain('not accepted in URLs');
    const both = await t.app.inject({ method: 'GET', url: `${API}/auth/me?access_token=${user.access_token}`, headers: user.headers });
    expect(both.statusCode).toBe(401);
  });

  it('issues stream tickets that are not access tokens and only work on ticket-accepting routes', async () => {
    const user = await createUser(t);
    const issued = await t.app.inject({ method: 'POST', url: `${API}/auth/stream-ticket`, headers: user.headers });
    expect(issued.statusCode).toBe(200);
    const { ticket, expires_in } = issued.json();
    expect(expires_in).toBe(60);
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await me(bearer(ticket))).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: `${API}/auth/me?ticket=${ticket}` })).statusCode).toBe(401);
    const anonymous = await t.app.inject({ method: 'POST', url: `${API}/auth/stream-ticket` });
    expect(anonymous.statusCode).toBe(401);
  });
});

describe('the stricter rate limit of the auth entry points', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { AUTH_RATE_LIMIT_REQUESTS: '3' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('answers 429 with Retry-After past AUTH_RATE_LIMIT_REQUESTS per client, per route', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 4; i += 1) {
      last = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token: 'x' }, remoteAddress: '198.51.100.4' });
      statuses.push(last.statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect(last!.headers['content-type']).toContain('application/problem+json');
    // Another client is not affected; authenticated routes keep the general limit.
    const other = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token: 'x' }, remoteAddress: '198.51.100.5' });
    expect(other.statusCode).toBe(401);
  });
});

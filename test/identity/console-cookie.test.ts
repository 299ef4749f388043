import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { bearer, createUser, login } from '../helpers/users.js';

const API = '/api/v1';
const CSRF = { 'x-cdsa-csrf': '1' };

function refreshCookie(setCookie: string | string[] | undefined): { value: string; attributes: string } {
  const header = (Array.isArray(setCookie) ? setCookie : [setCookie ?? '']).find((c) => c.startsWith('cdsa_refresh='));
  if (!header) throw new Error(`no cdsa_refresh cookie in ${JSON.stringify(setCookie)}`);
  const [pair, ...attributes] = header.split(';');
  return { value: pair.slice('cdsa_refresh='.length), attributes: attributes.join(';').trim() };
}

describe('the console refresh cookie (CONTRACT §11)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  async function cookieLogin(remoteAddress?: string) {
    const user = await createUser(t);
    const response = await t.app.inject({
      method: 'POST',
      url: `${API}/auth/login`,
      headers: CSRF,
      remoteAddress,
      payload: { username: user.user.username, password: user.password },
    });
    expect(response.statusCode, response.body).toBe(200);
    return { user, response, cookie: refreshCookie(response.headers['set-cookie']) };
  }

  it('a login with X-CDSA-CSRF: 1 puts the refresh token in an HttpOnly, SameSite=Strict cookie on the refresh path only', async () => {
    const { response, cookie } = await cookieLogin();
    expect(cookie.value).toMatch(/.{20,}/);
    expect(cookie.attributes).toContain('HttpOnly');
    expect(cookie.attributes).toContain('SameSite=Strict');
    expect(cookie.attributes).toContain('Path=/api/v1/auth/refresh');
    expect(cookie.attributes).not.toContain('Secure');
    const body = response.json();
    expect(body.access_token).toMatch(/\S+/);
    // The page never sees the refresh token.
    expect(body.refresh_token).toBe('');
    expect(response.body).not.toContain(cookie.value);
    expect(response.headers['cache-control']).toBe('no-store');
  });

  it('a login without the header is unchanged: the tokens in the body, no cookie', async () => {
    const user = await createUser(t);
    const response = await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username: user.user.username, password: user.password } });
    expect(response.json().refresh_token).toMatch(/\S{20,}/);
    expect(response.headers['set-cookie']).toBeUndefined();
  });

  it('refresh accepts the cookie with the header, rotates it, and a reused cookie ends the session', async () => {
    const { cookie } = await cookieLogin();
    const first = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `other=1; cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(first.statusCode, first.body).toBe(200);
    const rotated = refreshCookie(first.headers['set-cookie']);
    expect(rotated.value).not.toBe(cookie.value);
    expect(first.json().refresh_token).toBe('');
    const access = first.json().access_token as string;
    expect((await t.app.inject({ url: `${API}/auth/me`, headers: bearer(access) })).statusCode).toBe(200);

    // The old cookie again: reuse is detected, the whole session ends, the dead cookie is cleared.
    const reuse = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(reuse.statusCode).toBe(401);
    expect(refreshCookie(reuse.headers['set-cookie']).attributes).toContain('Max-Age=0');
    expect((await t.app.inject({ url: `${API}/auth/me`, headers: bearer(access) })).statusCode).toBe(401);
    const again = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `cdsa_refresh=${rotated.value}` }, payload: {} });
    expect(again.statusCode).toBe(401);
  });

  it('the cookie alone is not enough: without X-CDSA-CSRF the body token is required (CSRF)', async () => {
    const { cookie } = await cookieLogin();
    const response = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { cookie: `cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toContainEqual({ pointer: '/refresh_token', detail: 'is required' });
    // ... and the cookie was not spent: with the header it still works.
    const ok = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(ok.statusCode).toBe(200);
  });

  it('the header without a cookie is a 401 problem', async () => {
    const response = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: CSRF, payload: {} });
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toContain('application/problem+json');
  });

  it('the body token still works as before (API clients)', async () => {
    const user = await createUser(t);
    const response = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token: user.refresh_token } });
    expect(response.statusCode).toBe(200);
    expect(response.json().refresh_token).toMatch(/\S{20,}/);
  });

  it('is Secure when the request came over TLS through a trusted proxy', async () => {
    const proxied = await buildTestApp({ env: { TRUST_PROXY: 'true' } });
    try {
      const user = await createUser(proxied);
      const response = await proxied.app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        headers: { ...CSRF, 'x-forwarded-proto': 'https' },
        payload: { username: user.user.username, password: user.password },
      });
      expect(refreshCookie(response.headers['set-cookie']).attributes).toContain('Secure');
    } finally {
      await proxied.close();
    }
  });

  it('logout clears the cookie and ends the session', async () => {
    const { response, cookie } = await cookieLogin();
    const access = response.json().access_token as string;
    const logout = await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: bearer(access) });
    expect(logout.statusCode).toBe(204);
    const cleared = refreshCookie(logout.headers['set-cookie']);
    expect(cleared.value).toBe('');
    expect(cleared.attributes).toContain('Max-Age=0');
    expect(cleared.attributes).toContain('Path=/api/v1/auth/refresh');
    const refresh = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(refresh.statusCode).toBe(401);
  });

  it('sign-out everywhere ends every session of the caller at once, audited', async () => {
    const { user, response, cookie } = await cookieLogin();
    const other = await login(t, user.user.username, user.password);
    const access = response.json().access_token as string;
    const everywhere = await t.app.inject({ method: 'POST', url: `${API}/auth/logout-everywhere`, headers: bearer(access) });
    expect(everywhere.statusCode, everywhere.body).toBe(200);
    expect(everywhere.json().sessions_revoked).toBeGreaterThanOrEqual(3);
    expect(refreshCookie(everywhere.headers['set-cookie']).attributes).toContain('Max-Age=0');
    for (const token of [access, other.access_token, user.access_token]) {
      expect((await t.app.inject({ url: `${API}/auth/me`, headers: bearer(token) })).statusCode).toBe(401);
    }
    const refreshed = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token: other.refresh_token } });
    expect(refreshed.statusCode).toBe(401);
    const cookieRefresh = await t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, headers: { ...CSRF, cookie: `cdsa_refresh=${cookie.value}` }, payload: {} });
    expect(cookieRefresh.statusCode).toBe(401);
    const events = (await auditEvents(t, 'LOGOUT')).filter((row) => row.user_id === user.user.id);
    expect(events.at(-1)?.details).toMatchObject({ all_sessions: true });
  });

  it('sign-out everywhere needs a signed-in caller', async () => {
    expect((await t.app.inject({ method: 'POST', url: `${API}/auth/logout-everywhere` })).statusCode).toBe(401);
  });
});

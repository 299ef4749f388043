import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, strongPassword } from '../helpers/users.js';

/**
 * Single sign-on against a real OpenID provider (oidc-provider) started here on a random port. The test plays the
 * browser: it follows the redirects, carries each side's cookies, and the provider's interaction page signs in
 * whichever account the test chose. A hook after the provider's token endpoint can re-sign the ID token with the
 * provider's own key (so only the changed claim is wrong), to check each validation on its own.
 */

const CLIENT_ID = 'cdsa-test';
const CLIENT_SECRET = 'cdsa-test-secret-0123456789abcdef';

interface Account {
  sub: string;
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  name?: string;
  groups?: string[];
}

let issuer: string;
let providerServer: Server;
let signingJwk: JWK;
let nextAccount: Account;
let tamper: ((idToken: string) => Promise<string>) | undefined;
let t: TestApp;
const accounts = new Map<string, Account>();

async function resign(idToken: string, changes: Record<string, unknown>, jwk: JWK = signingJwk): Promise<string> {
  const header = decodeProtectedHeader(idToken);
  const payload = { ...decodeJwt(idToken), ...changes };
  const key = await importJWK(jwk, 'RS256');
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: header.kid ?? '' }).sign(key);
}

beforeAll(async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  signingJwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  providerServer = createServer();
  await new Promise<void>((resolve) => providerServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(providerServer.address() as AddressInfo).port}`;

  t = await buildTestApp({
    env: {
      OIDC_ISSUER_URL: issuer,
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      OIDC_REDIRECT_URL: 'http://127.0.0.1:9/api/v1/auth/oidc/callback',
      OIDC_ROLE_CLAIM: 'groups',
      OIDC_ROLE_MAP: 'cdsa-managers=MANAGER,cdsa-admins=ADMIN',
      OIDC_CLEARANCE_CLAIM: 'groups',
      OIDC_CLEARANCE_MAP: 'cleared-restricted=RESTRICTED,cleared-public=PUBLIC',
    },
  });

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: ['http://127.0.0.1:9/api/v1/auth/oidc/callback'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [signingJwk] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username', 'groups'] },
    findAccount: async (_ctx, sub) => {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ ...account }) };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && tamper) {
      const body = ctx.body as { id_token: string };
      ctx.body = { ...body, id_token: await tamper(body.id_token) };
    }
  });
  const handle = provider.callback();
  providerServer.on('request', (request, response) => {
    const match = /^\/interaction\/([^/?]+)/.exec(request.url ?? '');
    if (!match) return void handle(request, response);
    // The provider's login and consent page: signs in the account the test chose, granting what was asked.
    void (async () => {
      const details = await provider.interactionDetails(request, response);
      accounts.set(nextAccount.sub, nextAccount);
      const grant = new provider.Grant({ accountId: nextAccount.sub, clientId: CLIENT_ID });
      grant.addOIDCScope(String(details.params.scope));
      const grantId = await grant.save();
      await provider.interactionFinished(request, response, { login: { accountId: nextAccount.sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
    })().catch((error: unknown) => {
      response.statusCode = 500;
      response.end(String(error));
    });
  });
});

afterAll(async () => {
  await t?.close();
  providerServer?.closeAllConnections();
  await new Promise<void>((resolve) => providerServer?.close(() => resolve()));
});

interface Started {
  location: string;
  binding: string;
}

async function startLogin(): Promise<Started> {
  const response = await t.app.inject({ method: 'GET', url: '/api/v1/auth/oidc/login' });
  expect(response.statusCode, response.body).toBe(302);
  const cookie = String(response.headers['set-cookie']);
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Lax/);
  return { location: String(response.headers.location), binding: /cdsa_oidc=([^;]+)/.exec(cookie)![1]! };
}

/** The browser at the provider: follows redirects (carrying the provider's cookies) until it is sent back to CDSA. */
async function atProvider(location: string, account: Account): Promise<URLSearchParams> {
  nextAccount = account;
  const jar = new Map<string, string>();
  let url = location;
  for (let hop = 0; hop < 10; hop += 1) {
    const response = await fetch(url, { redirect: 'manual', headers: { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') } });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = pair!.split('=');
      jar.set(name!, value.join('='));
    }
    const next = response.headers.get('location');
    if (!next) throw new Error(`provider stopped at ${url}: ${response.status} ${await response.text()}`);
    const resolved = new URL(next, url);
    if (resolved.pathname === '/api/v1/auth/oidc/callback') return resolved.searchParams;
    url = resolved.href;
  }
  throw new Error('too many redirects at the provider');
}

function callback(query: URLSearchParams, binding: string | undefined) {
  return t.app.inject({
    method: 'GET',
    url: `/api/v1/auth/oidc/callback?${query.toString()}`,
    ...(binding ? { headers: { cookie: `cdsa_oidc=${binding}` } } : {}),
  });
}

async function ssoLogin(account: Account) {
  const started = await startLogin();
  const query = await atProvider(started.location, account);
  return callback(query, started.binding);
}

let counter = 0;
function account(overrides: Partial<Account> = {}): Account {
  counter += 1;
  return { sub: `sub-${counter}-${Math.random().toString(36).slice(2, 8)}`, email: `sso${counter}.${Date.now()}@corp.example`, email_verified: true, preferred_username: `sso.user${counter}`, name: 'Sso User', ...overrides };
}

describe('OpenID Connect sign-in', () => {
  it('sends the browser to the provider with PKCE, state and nonce, and signs a new user in as ANALYST (SSO_LOGIN)', async () => {
    const started = await startLogin();
    const authorize = new URL(started.location);
    expect(authorize.origin).toBe(issuer);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('client_id')).toBe(CLIENT_ID);

    const person = account();
    const query = await atProvider(started.location, person);
    const response = await callback(query, started.binding);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ token_type: 'bearer', user: { email: person.email, role: 'ANALYST' } });
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { authorization: `Bearer ${body.access_token}` } });
    expect(me.statusCode).toBe(200);
    const refreshed = await t.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: body.refresh_token } });
    expect(refreshed.statusCode).toBe(200);
    const events = (await auditEvents(t, 'SSO_LOGIN')).filter((event) => event.user_id === body.user.id);
    expect(events).toHaveLength(1);
    expect(events[0]!.details).toMatchObject({ issuer, subject: person.sub, account: 'provisioned' });

    // The same provider account later: the same user, found by (issuer, subject).
    const again = await ssoLogin({ ...person, email: `changed.${person.email}` });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().user.id).toBe(body.user.id);
  });

  it('maps the role claim at every login', async () => {
    const person = account({ groups: ['staff', 'cdsa-managers'] });
    const first = await ssoLogin(person);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().user.role).toBe('MANAGER');
    const promoted = await ssoLogin({ ...person, groups: ['cdsa-admins'] });
    expect(promoted.json().user.role).toBe('ADMIN');
    const demoted = await ssoLogin({ ...person, groups: [] });
    expect(demoted.json().user.role).toBe('ANALYST');
    expect(demoted.json().user.clearance).toBe('INTERNAL');
    // The earlier session's token now carries the current role (checked per request).
    const listUsers = await t.app.inject({ method: 'GET', url: '/api/v1/users', headers: { authorization: `Bearer ${promoted.json().access_token}` } });
    expect(listUsers.statusCode).toBe(403);
  });

  it('maps the clearance claim at every login, back to the role default when nothing maps', async () => {
    const person = account({ groups: ['cdsa-managers', 'cleared-public', 'cleared-restricted'] });
    const first = await ssoLogin(person);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().user).toMatchObject({ role: 'MANAGER', clearance: 'RESTRICTED' });
    const lowered = await ssoLogin({ ...person, groups: ['cdsa-managers', 'cleared-public'] });
    expect(lowered.json().user).toMatchObject({ role: 'MANAGER', clearance: 'PUBLIC' });
    const unmapped = await ssoLogin({ ...person, groups: ['cdsa-managers'] });
    expect(unmapped.json().user).toMatchObject({ role: 'MANAGER', clearance: 'CONFIDENTIAL' });
    const updates = (await auditEvents(t, 'USER_UPDATED')).filter((event) => event.resource_id === first.json().user.id);
    expect(updates.map((event) => (event.details.changes as { clearance?: { to: string | null } }).clearance?.to)).toEqual(expect.arrayContaining(['PUBLIC', null]));
  });

  it('refuses a forged state, a replayed callback and a callback from another browser', async () => {
    const started = await startLogin();
    const query = await atProvider(started.location, account());

    const forged = new URLSearchParams(query);
    forged.set('state', 'forged-state-value');
    expect((await callback(forged, started.binding)).statusCode).toBe(401);

    expect((await callback(query, 'someone-elses-binding')).statusCode).toBe(401);

    // The binding check spent the state: even the right browser cannot use it now.
    expect((await callback(query, started.binding)).statusCode).toBe(401);

    const second = await startLogin();
    const secondQuery = await atProvider(second.location, account());
    expect((await callback(secondQuery, second.binding)).statusCode).toBe(200);
    const replay = await callback(secondQuery, second.binding);
    expect(replay.statusCode).toBe(401);
  });

  it.each([
    ['a wrong nonce', { nonce: 'not-the-nonce-we-sent' }],
    ['a wrong audience', { aud: 'another-client' }],
    ['an expired ID token', { exp: Math.floor(Date.now() / 1000) - 600, iat: Math.floor(Date.now() / 1000) - 1200 }],
    ['a wrong issuer', { iss: 'http://127.0.0.1:1' }],
  ])('refuses an ID token with %s (validly signed by the provider)', async (_what, changes) => {
    tamper = (idToken) => resign(idToken, changes);
    try {
      const response = await ssoLogin(account());
      expect(response.statusCode, response.body).toBe(401);
    } finally {
      tamper = undefined;
    }
  });

  it('accepts a token re-signed with the provider key and nothing changed (the control for the refusals below)', async () => {
    tamper = (idToken) => resign(idToken, {});
    try {
      const response = await ssoLogin(account());
      expect(response.statusCode, response.body).toBe(200);
    } finally {
      tamper = undefined;
    }
  });

  it('refuses an ID token signed by another key', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const foreign = { ...(await exportJWK(privateKey)), kid: 'test-key' };
    tamper = (idToken) => resign(idToken, {}, foreign);
    try {
      const response = await ssoLogin(account());
      expect(response.statusCode, response.body).toBe(401);
    } finally {
      tamper = undefined;
    }
    const failures = (await auditEvents(t, 'LOGIN_FAILED')).filter((event) => event.details.reason === 'sso_callback_refused');
    expect(failures.length).toBeGreaterThanOrEqual(5);
  });
});

describe('account linking', () => {
  it('links an existing local account only through a verified e-mail, never by username', async () => {
    const local = await createUser(t, { email: `local.${Date.now()}@corp.example` });

    const unverified = await ssoLogin(account({ email: local.user.email, email_verified: false }));
    expect(unverified.statusCode, unverified.body).toBe(409);

    const sameName = await ssoLogin(account({ preferred_username: local.user.username }));
    expect(sameName.statusCode, sameName.body).toBe(200);
    expect(sameName.json().user.id).not.toBe(local.user.id);
    expect(sameName.json().user.username).not.toBe(local.user.username);

    const verified = await ssoLogin(account({ email: local.user.email, email_verified: true }));
    expect(verified.statusCode, verified.body).toBe(200);
    expect(verified.json().user.id).toBe(local.user.id);
    const events = (await auditEvents(t, 'SSO_LOGIN')).filter((event) => event.user_id === local.user.id);
    expect(events.map((event) => event.details.account)).toEqual(['new_link']);
  });
});

describe('OIDC_ONLY', () => {
  it('refuses password sign-in to everyone but the break-glass administrator', async () => {
    const only = await buildTestApp({
      env: {
        OIDC_ISSUER_URL: issuer,
        OIDC_CLIENT_ID: CLIENT_ID,
        OIDC_CLIENT_SECRET: CLIENT_SECRET,
        OIDC_REDIRECT_URL: 'http://127.0.0.1:9/api/v1/auth/oidc/callback',
        OIDC_ONLY: 'true',
        OIDC_BREAK_GLASS_USERNAME: 'breakglass',
      },
    });
    try {
      const password = strongPassword();
      for (const [username, role] of [['breakglass', 'ADMIN'], ['ordinary', 'ANALYST']] as const) {
        await only.app.users.createUser(null, { username, email: `${username}@corp.example`, password, fullName: null, role }, { origin: 'cli' });
      }
      const ordinary = await only.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'ordinary', password } });
      expect(ordinary.statusCode).toBe(403);
      const register = await only.app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { username: 'newbie', email: 'newbie@corp.example', password } });
      expect(register.statusCode).toBe(403);
      const breakGlass = await only.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'breakglass', password } });
      expect(breakGlass.statusCode, breakGlass.body).toBe(200);
    } finally {
      await only.close();
    }
  });
});

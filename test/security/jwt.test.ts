import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';

/** RFC 8725 attacks on the access token: every variation of a valid token must be refused with 401. */
describe('JWT access token attacks', () => {
  let t: TestApp;
  let user: TestUser;
  let other: TestUser;
  let sid: string;

  beforeAll(async () => {
    t = await buildTestApp();
    user = await createUser(t);
    other = await createUser(t);
    sid = decodeJwt(user.access_token).sid as string;
  });
  afterAll(async () => {
    await t.close();
  });

  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = () => Math.floor(Date.now() / 1000);
  const me = (token: string) => t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { authorization: `Bearer ${token}` } });

  interface Forge {
    alg?: string;
    typ?: string | null;
    key?: Uint8Array;
    claims?: Record<string, unknown>;
    omit?: string[];
  }

  /** A token exactly like the server's, with one thing changed. */
  async function forge(options: Forge = {}): Promise<string> {
    const claims: Record<string, unknown> = {
      iss: t.config.jwtIssuer,
      aud: t.config.jwtAudience,
      sub: user.user.id,
      sid,
      role: user.user.role,
      iat: now(),
      exp: now() + 300,
      jti: randomUUID(),
      ...options.claims,
    };
    for (const name of options.omit ?? []) delete claims[name];
    const header: Record<string, string> = { alg: options.alg ?? 'HS256' };
    if (options.typ !== null) header.typ = options.typ ?? 'at+jwt';
    return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(options.key ?? t.secrets.jwtSecretKey);
  }

  it('a correctly forged token with the real key works (the control for every case below)', async () => {
    expect((await me(await forge())).statusCode).toBe(200);
    expect((await me(user.access_token)).statusCode).toBe(200);
  });

  it('alg=none is refused', async () => {
    const [, payload] = (await forge()).split('.');
    for (const alg of ['none', 'None', 'NONE']) {
      expect((await me(`${b64({ alg, typ: 'at+jwt' })}.${payload}.`)).statusCode).toBe(401);
    }
  });

  it('other HMAC algorithms with the same key are refused (HS256 is pinned)', async () => {
    expect((await me(await forge({ alg: 'HS384' }))).statusCode).toBe(401);
    expect((await me(await forge({ alg: 'HS512' }))).statusCode).toBe(401);
  });

  it('an RS256 token (algorithm confusion) is refused', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = await new SignJWT({ sid, role: 'ADMIN' })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
      .setIssuer(t.config.jwtIssuer)
      .setAudience(t.config.jwtAudience)
      .setSubject(user.user.id)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(privateKey);
    expect((await me(token)).statusCode).toBe(401);
  });

  it('a token signed with another key is refused', async () => {
    expect((await me(await forge({ key: randomBytes(48) }))).statusCode).toBe(401);
  });

  it('a tampered payload or a stripped signature is refused', async () => {
    const [header, , signature] = user.access_token.split('.');
    const claims = decodeJwt(user.access_token);
    expect((await me(`${header}.${b64({ ...claims, role: 'ADMIN' })}.${signature}`)).statusCode).toBe(401);
    expect((await me(`${header}.${b64({ ...claims, sub: other.user.id })}.${signature}`)).statusCode).toBe(401);
    expect((await me(`${header}.${b64(claims)}.`)).statusCode).toBe(401);
    expect((await me(`${header}.${b64(claims)}`)).statusCode).toBe(401);
  });

  it('expired tokens are refused; a small clock skew is tolerated', async () => {
    expect((await me(await forge({ claims: { iat: now() - 3600, exp: now() - 120 } }))).statusCode).toBe(401);
    expect((await me(await forge({ claims: { iat: now() - 900, exp: now() - 5 } }))).statusCode).toBe(200);
  });

  it('a token issued in the future (iat beyond the clock skew) is refused', async () => {
    const tenYears = 10 * 365 * 86_400;
    expect((await me(await forge({ claims: { iat: now() + tenYears, exp: now() + tenYears + 900 } }))).statusCode).toBe(401);
    expect((await me(await forge({ claims: { iat: now() + 600, exp: now() + 900 } }))).statusCode).toBe(401);
    expect((await me(await forge({ claims: { iat: now() + 10, exp: now() + 900 } }))).statusCode).toBe(200);
  });

  it('a token without exp is refused', async () => {
    expect((await me(await forge({ omit: ['exp'] }))).statusCode).toBe(401);
  });

  it('a token that is not yet valid (nbf in the future) is refused', async () => {
    expect((await me(await forge({ claims: { nbf: now() + 600 } }))).statusCode).toBe(401);
  });

  it('a wrong audience or issuer is refused', async () => {
    expect((await me(await forge({ claims: { aud: 'some-other-api' } }))).statusCode).toBe(401);
    expect((await me(await forge({ claims: { iss: 'https://evil.example' } }))).statusCode).toBe(401);
    expect((await me(await forge({ omit: ['aud'] }))).statusCode).toBe(401);
  });

  it('a JWT that is not typed as an access token is refused (no other token can pass for one)', async () => {
    expect((await me(await forge({ typ: null }))).statusCode).toBe(401);
    expect((await me(await forge({ typ: 'JWT' }))).statusCode).toBe(401);
    expect((await me(await forge({ typ: 'refresh+jwt' }))).statusCode).toBe(401);
  });

  it('claims are required: sub, sid, jti, role', async () => {
    for (const claim of ['sub', 'sid', 'jti', 'role']) {
      expect((await me(await forge({ omit: [claim] }))).statusCode, claim).toBe(401);
    }
  });

  it("a token naming another user's session is refused", async () => {
    const otherSid = decodeJwt(other.access_token).sid as string;
    expect((await me(await forge({ claims: { sid: otherSid } }))).statusCode).toBe(401);
    expect((await me(await forge({ claims: { sid: randomUUID() } }))).statusCode).toBe(401);
  });

  it('authorization uses the current role, not the role claim', async () => {
    const token = await forge({ claims: { role: 'ADMIN' } });
    const response = await t.app.inject({ method: 'GET', url: '/api/v1/users', headers: { authorization: `Bearer ${token}` } });
    expect(response.statusCode).toBe(403);
  });

  it('refresh tokens and garbage are not access tokens', async () => {
    expect((await me(user.refresh_token)).statusCode).toBe(401);
    expect((await me('not.a.jwt')).statusCode).toBe(401);
    expect((await me('x'.repeat(4000))).statusCode).toBe(401);
    const scheme = await t.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { authorization: user.access_token } });
    expect(scheme.statusCode).toBe(401);
  });

  it('every refusal is a problem document with WWW-Authenticate and no detail about the token', async () => {
    const response = await me(await forge({ key: randomBytes(48) }));
    expect(response.headers['www-authenticate']).toBe('Bearer');
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().detail).toBe('Invalid or expired access token');
  });
});

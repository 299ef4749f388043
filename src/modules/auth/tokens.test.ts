import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../lib/crypto/hmac.js';
import { createTokenIssuer, newOpaqueToken } from './tokens.js';

const claims = { userId: '11111111-1111-4111-8111-111111111111', sessionId: '22222222-2222-4222-8222-222222222222', role: 'MANAGER' as const };

async function issuer(now: () => number, secret = randomBytes(32)) {
  return createTokenIssuer({ secret, issuer: 'cdsa', audience: 'cdsa-api', accessTtlSeconds: 900, now });
}

describe('access tokens', () => {
  it('carry iss, aud, sub, sid, role, iat, exp, jti and an at+jwt HS256 header', async () => {
    const tokens = await issuer(() => 1_800_000_000_000);
    const { token, expiresIn } = await tokens.issueAccessToken(claims);
    expect(expiresIn).toBe(900);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'at+jwt' });
    const payload = decodeJwt(token);
    expect(payload).toMatchObject({ iss: 'cdsa', aud: 'cdsa-api', sub: claims.userId, sid: claims.sessionId, role: 'MANAGER', iat: 1_800_000_000, exp: 1_800_000_900 });
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    await expect(tokens.verifyAccessToken(token)).resolves.toMatchObject({ userId: claims.userId, sessionId: claims.sessionId, role: 'MANAGER' });
  });

  it('stop working at expiry even after an earlier verification was remembered', async () => {
    let now = 1_800_000_000_000;
    const tokens = await issuer(() => now, randomBytes(32));
    const { token } = await tokens.issueAccessToken(claims);
    await expect(tokens.verifyAccessToken(token)).resolves.toBeTruthy();
    await expect(tokens.verifyAccessToken(token)).resolves.toBeTruthy();
    now += 900_000 + 60_000;
    await expect(tokens.verifyAccessToken(token)).rejects.toMatchObject({ reason: 'ERR_JWT_EXPIRED' });
  });

  it('expire after their lifetime plus a small skew', async () => {
    let now = 1_800_000_000_000;
    const secret = randomBytes(32);
    const tokens = await issuer(() => now, secret);
    const { token } = await tokens.issueAccessToken(claims);
    now += 900_000 + 20_000;
    await expect(tokens.verifyAccessToken(token)).resolves.toBeTruthy();
    now += 20_000;
    await expect(tokens.verifyAccessToken(token)).rejects.toMatchObject({ reason: 'ERR_JWT_EXPIRED' });
  });

  it('are bound to the key', async () => {
    const a = await issuer(Date.now);
    const b = await issuer(Date.now);
    const { token } = await a.issueAccessToken(claims);
    await expect(b.verifyAccessToken(token)).rejects.toMatchObject({ reason: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });
});

describe('opaque tokens', () => {
  it('are 256 random bits, URL-safe, stored as SHA-256', () => {
    const token = newOpaqueToken();
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(newOpaqueToken()).not.toBe(token);
    expect(sha256Hex(token)).toMatch(/^[0-9a-f]{64}$/);
  });
});

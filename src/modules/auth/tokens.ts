import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { LruMap } from '../../lib/lru-map.js';
import { isRole, type Role } from './permissions.js';

/**
 * Access tokens are short-lived JWTs (RFC 8725): HS256 only, `typ: at+jwt` in the header (RFC 9068) so no other kind
 * of token can pass for one, and iss/aud/sub/sid/role/iat/exp/jti claims. Refresh tokens and stream tickets are
 * opaque random strings that are stored only as SHA-256 hashes; they are never JWTs, so they cannot be confused.
 */
export const ACCESS_TOKEN_TYPE = 'at+jwt';
const ALGORITHM = 'HS256';
/** Leeway for clocks of several instances that disagree slightly. */
export const CLOCK_SKEW_SECONDS = 30;

export interface AccessClaims {
  userId: string;
  sessionId: string;
  role: Role;
  jti: string;
  expiresAt: number;
  /** How the session's user authenticated (RFC 8176), e.g. `['pwd', 'otp']`. */
  amr: string[];
}

export interface TokenIssuerOptions {
  secret: Uint8Array;
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  now?: () => number;
}

/** Verified access tokens remembered at most (least recently used go first). */
const VERIFIED_CACHE_SIZE = 10_000;

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid access token: ${reason}`);
    this.name = 'InvalidTokenError';
  }
}

export async function createTokenIssuer(options: TokenIssuerOptions) {
  const now = options.now ?? Date.now;
  // Imported once: non-extractable, usable only for HMAC-SHA-256.
  const key = await webcrypto.subtle.importKey('raw', options.secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  const verified = new LruMap<string, AccessClaims>(VERIFIED_CACHE_SIZE);

  return {
    accessTtlSeconds: options.accessTtlSeconds,

    async issueAccessToken(input: { userId: string; sessionId: string; role: Role; amr?: readonly string[] }): Promise<{ token: string; expiresIn: number }> {
      const issuedAt = Math.floor(now() / 1000);
      const token = await new SignJWT({ sid: input.sessionId, role: input.role, amr: [...(input.amr ?? ['pwd'])] })
        .setProtectedHeader({ alg: ALGORITHM, typ: ACCESS_TOKEN_TYPE })
        .setIssuer(options.issuer)
        .setAudience(options.audience)
        .setSubject(input.userId)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + options.accessTtlSeconds)
        .setJti(randomUUID())
        .sign(key);
      return { token, expiresIn: options.accessTtlSeconds };
    },

    /** Verifies signature, algorithm, type and claims; throws InvalidTokenError naming why (for logs, not clients). */
    async verifyAccessToken(token: string): Promise<AccessClaims> {
      // A client sends the same token on every request until it expires: the result of a full verification of that
      // exact string is remembered (bounded, and never past `exp`), so the HMAC runs once per token, not per request.
      // Revocation does not depend on this: the session is checked on every request.
      const known = verified.get(token);
      if (known && now() < known.expiresAt * 1000) return known;
      verified.delete(token);
      const claims = await verifyFully(token);
      verified.set(token, claims);
      return claims;
    },
  };

  async function verifyFully(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [ALGORITHM],
        typ: ACCESS_TOKEN_TYPE,
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp', 'iat', 'sub', 'jti', 'sid', 'role'],
        currentDate: new Date(now()),
      });
      const { sub, sid, role, jti, exp, iat, amr } = payload;
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof jti !== 'string' || !isRole(role) || typeof exp !== 'number') {
        throw new InvalidTokenError('malformed claims');
      }
      // jose checks only that iat is a number. A token "issued" in the future was not issued by a clock within the
      // skew of ours: refuse it, like one whose nbf lies ahead.
      if (typeof iat !== 'number' || iat > now() / 1000 + CLOCK_SKEW_SECONDS) throw new InvalidTokenError('iat in the future');
      const methods = Array.isArray(amr) ? amr.filter((method): method is string => typeof method === 'string') : [];
      return { userId: sub, sessionId: sid, role, jti, expiresAt: exp, amr: methods };
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      if (error instanceof joseErrors.JOSEError) throw new InvalidTokenError(error.code);
      throw new InvalidTokenError('unreadable');
    }
  }
}

export type TokenIssuer = Awaited<ReturnType<typeof createTokenIssuer>>;

/** 256 random bits, URL-safe: refresh tokens and stream tickets. Stored as SHA-256 (sha256Hex): a full-entropy token needs no salt or slow hash. */
export function newOpaqueToken(): string {
  return randomBytes(32).toString('base64url');
}

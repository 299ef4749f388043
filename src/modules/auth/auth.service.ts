import { randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { ForbiddenError, UnauthorizedError } from '../../lib/errors.js';
import type { KeyValueStore } from '../../lib/infra/kv.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import type { UserRow, UsersRepository } from '../users/users.repository.js';
import { presentUser, type UserView } from '../users/users.schemas.js';
import type { UsersService } from '../users/users.service.js';
import { LoginThrottledError, type LoginThrottle } from './login-throttle.js';
import { hashPassword, needsRehash, verifyPassword } from './passwords.js';
import { effectiveClearance } from '../../lib/labels.js';
import type { Actor, RequestContext } from './permissions.js';
import type { SessionsRepository } from './sessions.repository.js';
import type { SessionService, SessionState } from './sessions.service.js';
import { sha256Hex } from '../../lib/crypto/hmac.js';
import { InvalidTokenError, newOpaqueToken, type TokenIssuer } from './tokens.js';

export const STREAM_TICKET_TTL_SECONDS = 60;
/** One message for every failed login, whatever the reason: no account enumeration. */
export const LOGIN_FAILED_MESSAGE = 'Invalid username or password';
const INVALID_TOKEN_MESSAGE = 'Invalid or expired access token';

export type LoginFailureReason = 'unknown_user' | 'bad_password' | 'inactive_user' | 'throttled_account' | 'throttled_client';

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  expires_in: number;
}

export interface LoginResult extends TokenPair {
  user: UserView;
}

/** The password was right and the user has a second factor: no tokens yet, only a challenge for /auth/mfa/verify. */
export interface MfaChallengeResult {
  mfa_required: true;
  mfa_token: string;
  expires_in: number;
}

/** What an MFA challenge remembers between the password and the code (in the key-value store, by token hash). */
export interface MfaChallenge {
  userId: string;
  /** Methods already passed (e.g. ['pwd']). */
  amr: string[];
  /** Wrong codes so far; the challenge is dropped at MFA_CHALLENGE_MAX_ATTEMPTS. */
  attempts: number;
  expiresAt: number;
}

export const MFA_CHALLENGE_TTL_SECONDS = 300;
export const MFA_CHALLENGE_MAX_ATTEMPTS = 5;
const MFA_CHALLENGE_MESSAGE = 'Invalid, used or expired MFA token; sign in again';

/** A security alert for the user concerned; wired to the notifications module when it is present. */
export type SecurityAlertSender = (input: { userId: string; title: string; message: string; data: Record<string, unknown> }) => Promise<void>;

export interface AuthServiceDeps {
  db: Db;
  users: Pick<UsersService, 'createUser'>;
  usersRepository: Pick<UsersRepository, 'findByLogin' | 'setPasswordHash'>;
  sessionsRepository: Pick<SessionsRepository, 'open' | 'insertRefreshToken' | 'claimRefreshToken' | 'findWithUser' | 'touch' | 'insertStreamTicket' | 'takeStreamTicket'>;
  sessions: SessionService;
  tokens: TokenIssuer;
  throttle: LoginThrottle;
  /** Where MFA challenges wait between the password and the code (Redis when configured: any instance may answer). */
  mfaChallenges: KeyValueStore;
  audit: Pick<AuditRecorder, 'record' | 'recordStandalone'>;
  registrationMode: 'open' | 'closed';
  /** OIDC_ONLY: password sign-in only for this break-glass administrator (an ADMIN by this username). */
  passwordLogin?: { breakGlassUsername: string };
  /** Roles whose users must have a second factor (MFA_REQUIRED_ROLES). */
  mfaRequiredRoles: readonly UserRow['role'][];
  refreshTtlSeconds: number;
  sessionMaxAgeSeconds: number;
  securityAlert?: () => SecurityAlertSender | undefined;
  now?: () => number;
  logger?: { warn(obj: object, msg: string): void };
}

function isLive(state: SessionState | null, now: number): state is SessionState {
  return state !== null && !state.revoked && state.expiresAt > now && state.user.isActive;
}

function actorOf(state: SessionState, mfaRequiredRoles: readonly UserRow['role'][]): Actor {
  return {
    userId: state.userId,
    username: state.user.username,
    role: state.user.role,
    sessionId: state.sessionId,
    clearance: effectiveClearance(state.user),
    mfa: { enabled: state.user.mfaEnabled, required: mfaRequiredRoles.includes(state.user.role), verifiedAt: state.mfaVerifiedAt },
  };
}

const challengeKey = (token: string) => `identity:mfa-challenge:${sha256Hex(token)}`;

/**
 * Registration, login, token refresh with rotation and reuse detection, logout, stream tickets, and the check behind
 * every authenticated request.
 */
export function createAuthService(deps: AuthServiceDeps) {
  const { db, sessions, tokens, throttle, audit } = deps;
  const now = deps.now ?? (() => Date.now());
  // Unknown users are checked against this, so they cost the same time as a wrong password.
  const dummyHash = hashPassword(newOpaqueToken());
  dummyHash.catch(() => undefined);

  /** A refresh token never outlives its session. */
  const refreshExpiry = (sessionExpiresAt: Date) => new Date(Math.min(now() + deps.refreshTtlSeconds * 1000, sessionExpiresAt.getTime()));

  async function issuePair(userId: string, sessionId: string, role: UserRow['role'], amr: readonly string[], sessionExpiresAt: Date, tx: Parameters<typeof deps.sessionsRepository.insertRefreshToken>[0]): Promise<TokenPair> {
    const refreshToken = newOpaqueToken();
    const expiresAt = refreshExpiry(sessionExpiresAt);
    await deps.sessionsRepository.insertRefreshToken(tx, { sessionId, tokenHash: sha256Hex(refreshToken), expiresAt });
    const access = await tokens.issueAccessToken({ userId, sessionId, role, amr });
    return { access_token: access.token, refresh_token: refreshToken, token_type: 'bearer', expires_in: access.expiresIn };
  }

  async function recordLoginFailure(reason: LoginFailureReason, user: UserRow | undefined, identifier: string, context: RequestContext): Promise<void> {
    await audit.recordStandalone({
      eventType: 'LOGIN_FAILED',
      userId: user?.id ?? null,
      resourceType: 'user',
      resourceId: user?.id ?? null,
      // The identifier's kind only: people type passwords into the username field, so the text is never kept.
      details: { reason, identifier_kind: identifier.includes('@') ? 'email' : 'username' },
      context,
    });
  }

  async function authenticateSession(sessionId: string, userId: string): Promise<Actor> {
    const state = await sessions.resolve(sessionId);
    if (!isLive(state, now()) || state.userId !== userId) throw new UnauthorizedError(INVALID_TOKEN_MESSAGE);
    return actorOf(state, deps.mfaRequiredRoles);
  }

  /**
   * A new session for a user who has passed every factor: the session row, its first refresh token, last_login_at
   * and the audit rows (LOGIN_SUCCEEDED and whatever the caller adds, e.g. MFA_VERIFIED) in one transaction.
   */
  async function openSession(
    user: UserRow,
    input: { amr: readonly string[]; mfaVerified: boolean; audit?: { eventType: 'MFA_VERIFIED' | 'RECOVERY_CODE_USED' | 'SSO_LOGIN'; details: Record<string, unknown> }[]; inTransaction?: (uow: UnitOfWork) => Promise<void> },
    context: RequestContext,
  ): Promise<LoginResult> {
    const loggedInAt = new Date(now());
    const sessionId = randomUUID();
    const sessionExpiresAt = new Date(loggedInAt.getTime() + deps.sessionMaxAgeSeconds * 1000);
    const refreshToken = newOpaqueToken();
    const access = await tokens.issueAccessToken({ userId: user.id, sessionId, role: user.role, amr: input.amr });
    await withTransaction(
      db,
      async (uow) => {
        await input.inTransaction?.(uow);
        await deps.sessionsRepository.open(uow.tx, {
          sessionId,
          userId: user.id,
          expiresAt: sessionExpiresAt,
          ipAddress: context.ipAddress,
          userAgent: context.userAgent,
          refreshTokenHash: sha256Hex(refreshToken),
          refreshExpiresAt: refreshExpiry(sessionExpiresAt),
          loggedInAt,
          amr: input.amr,
          mfaVerifiedAt: input.mfaVerified ? loggedInAt : null,
        });
        for (const event of input.audit ?? []) {
          await audit.record(uow.tx, { eventType: event.eventType, userId: user.id, sessionId, resourceType: 'user', resourceId: user.id, details: event.details, context });
        }
        await audit.record(uow.tx, {
          eventType: 'LOGIN_SUCCEEDED',
          userId: user.id,
          sessionId,
          resourceType: 'session',
          resourceId: sessionId,
          details: { username: user.username, amr: [...input.amr] },
          context,
        });
        // Cached copies of this user carry the old last_login_at.
        sessions.userChanged(uow, user.id);
      },
      deps.logger,
    );
    return {
      access_token: access.token,
      refresh_token: refreshToken,
      token_type: 'bearer',
      expires_in: access.expiresIn,
      user: presentUser({ ...user, lastLoginAt: loggedInAt }),
    };
  }

  return {
    async register(input: { username: string; email: string; password: string; fullName?: string }, context: RequestContext): Promise<UserView> {
      if (deps.registrationMode === 'closed' || deps.passwordLogin) {
        throw new ForbiddenError('Registration is closed; an administrator creates accounts');
      }
      return deps.users.createUser(null, { ...input, role: 'ANALYST' }, { origin: 'registration', context });
    },

    openSession,
    issueMfaChallenge,

    /** Takes a challenge (once): a wrong code puts it back through `retryMfaChallenge` until its attempts run out. */
    async takeMfaChallenge(token: string): Promise<MfaChallenge> {
      const raw = await deps.mfaChallenges.take(challengeKey(token));
      if (!raw) throw new UnauthorizedError(MFA_CHALLENGE_MESSAGE);
      const challenge = JSON.parse(raw) as MfaChallenge;
      if (challenge.expiresAt <= now()) throw new UnauthorizedError(MFA_CHALLENGE_MESSAGE);
      return challenge;
    },

    /** After a wrong code: the same token works again for the rest of its life, unless it has had its attempts. */
    async retryMfaChallenge(token: string, challenge: MfaChallenge): Promise<void> {
      const attempts = challenge.attempts + 1;
      const remaining = Math.floor((challenge.expiresAt - now()) / 1000);
      if (attempts >= MFA_CHALLENGE_MAX_ATTEMPTS || remaining < 1) return;
      await deps.mfaChallenges.set(challengeKey(token), JSON.stringify({ ...challenge, attempts }), remaining);
    },

    async login(input: { username: string; password: string }, context: RequestContext): Promise<LoginResult | MfaChallengeResult> {
      const identifier = input.username.trim();
      try {
        await throttle.beginClientAttempt(context.ipAddress);
      } catch (error) {
        if (error instanceof LoginThrottledError) await recordLoginFailure('throttled_client', undefined, identifier, context);
        throw error;
      }
      // Single sign-on only: one answer for every other identifier, before any lookup, so nothing is learnt from it.
      const breakGlass = deps.passwordLogin?.breakGlassUsername.toLowerCase();
      if (breakGlass !== undefined && identifier.toLowerCase() !== breakGlass) {
        throw new ForbiddenError('Password sign-in is disabled; sign in through single sign-on (GET /api/v1/auth/oidc/login)');
      }
      const user = await deps.usersRepository.findByLogin(db, identifier);
      const account = user ? `user:${user.id}` : `login:${identifier.toLowerCase()}`;
      try {
        await throttle.beginAccountAttempt(account);
      } catch (error) {
        if (error instanceof LoginThrottledError) await recordLoginFailure('throttled_account', user, identifier, context);
        throw error;
      }
      const passwordOk = await verifyPassword(user?.passwordHash ?? (await dummyHash), input.password);
      if (!user || !passwordOk || !user.isActive || (breakGlass !== undefined && user.role !== 'ADMIN')) {
        await recordLoginFailure(!user ? 'unknown_user' : !passwordOk ? 'bad_password' : 'inactive_user', user, identifier, context);
        throw new UnauthorizedError(LOGIN_FAILED_MESSAGE);
      }
      await throttle.recordSuccess(account);
      await throttle.clientSucceeded(context.ipAddress);

      const result: LoginResult | MfaChallengeResult = user.mfaEnabled
        ? await issueMfaChallenge(user.id, ['pwd'])
        : await openSession(user, { amr: ['pwd'], mfaVerified: false }, context);
      if (needsRehash(user.passwordHash)) {
        // Upgrade hashes made with older parameters; the login has succeeded either way.
        await hashPassword(input.password)
          .then((upgraded) => deps.usersRepository.setPasswordHash(db, user.id, upgraded))
          .catch((error: unknown) => deps.logger?.warn({ err: error }, 'password rehash failed'));
      }
      return result;
    },

    /**
     * Rotation: each refresh token works once. Presenting one that was already used means it was copied — the whole
     * session (every token issued from that login) is revoked and the user is alerted.
     */
    async refresh(refreshToken: string, context: RequestContext): Promise<TokenPair> {
      const tokenHash = sha256Hex(refreshToken);
      const at = new Date(now());
      const outcome = await withTransaction(
        db,
        async (uow) => {
          const claim = await deps.sessionsRepository.claimRefreshToken(uow.tx, tokenHash, at);
          if (claim.outcome !== 'claimed') return { claim };
          const found = await deps.sessionsRepository.findWithUser(uow.tx, claim.sessionId);
          if (!found || found.session.revokedAt || found.session.expiresAt <= at || !found.user.isActive) return { claim: { outcome: 'expired' as const } };
          const { session, user } = found;
          const pair = await issuePair(user.id, session.id, user.role, session.amr, session.expiresAt, uow.tx);
          await deps.sessionsRepository.touch(uow.tx, session.id, at);
          await audit.record(uow.tx, {
            eventType: 'TOKEN_REFRESHED',
            userId: user.id,
            sessionId: session.id,
            resourceType: 'session',
            resourceId: session.id,
            context,
          });
          return { claim, pair };
        },
        deps.logger,
      );
      if (outcome.pair) return outcome.pair;
      if (outcome.claim.outcome === 'reused') await handleReuse(outcome.claim.sessionId, context);
      throw new UnauthorizedError('Invalid or expired refresh token');
    },

    async logout(actor: Actor, context: RequestContext): Promise<void> {
      await withTransaction(
        db,
        async (uow) => {
          await sessions.revokeSession(uow, { userId: actor.userId, sessionId: actor.sessionId, reason: 'logout' });
          await audit.record(uow.tx, {
            eventType: 'LOGOUT',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'session',
            resourceId: actor.sessionId,
            context,
          });
        },
        deps.logger,
      );
    },

    /** Sign-out everywhere: every session of the caller ends at once (this one included), one LOGOUT event. */
    async logoutEverywhere(actor: Actor, context: RequestContext): Promise<number> {
      return withTransaction(
        db,
        async (uow) => {
          const ids = await sessions.revokeUserSessions(uow, { userId: actor.userId, reason: 'logout_everywhere' });
          await audit.record(uow.tx, {
            eventType: 'LOGOUT',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'session',
            resourceId: actor.sessionId,
            details: { all_sessions: true, sessions_revoked: ids.length },
            context,
          });
          return ids.length;
        },
        deps.logger,
      );
    },

    /**
     * A single-use, short-lived ticket bound to the caller's session, for a browser EventSource (`?ticket=`). Stored in
     * the database, so browsers can open streams while Redis is down.
     */
    async issueStreamTicket(actor: Actor): Promise<{ ticket: string; expires_in: number }> {
      const ticket = newOpaqueToken();
      const at = now();
      await deps.sessionsRepository.insertStreamTicket(
        db,
        { ticketHash: sha256Hex(ticket), sessionId: actor.sessionId, userId: actor.userId, expiresAt: new Date(at + STREAM_TICKET_TTL_SECONDS * 1000) },
        new Date(at),
      );
      return { ticket, expires_in: STREAM_TICKET_TTL_SECONDS };
    },

    /** The per-request check: a valid access token of a live session of an active user. */
    async authenticateAccessToken(token: string): Promise<Actor> {
      let claims;
      try {
        claims = await tokens.verifyAccessToken(token);
      } catch (error) {
        if (error instanceof InvalidTokenError) throw new UnauthorizedError(INVALID_TOKEN_MESSAGE);
        throw error;
      }
      return authenticateSession(claims.sessionId, claims.userId);
    },

    /** Redeems a stream ticket (once); its session must still be live. */
    async authenticateStreamTicket(ticket: string): Promise<Actor> {
      const found = await deps.sessionsRepository.takeStreamTicket(db, sha256Hex(ticket), new Date(now()));
      if (!found) throw new UnauthorizedError('Invalid, used or expired stream ticket');
      return authenticateSession(found.sessionId, found.userId);
    },

    /** The caller's own user, from the session cache (the token was just checked against it). */
    async me(actor: Actor): Promise<UserView> {
      const state = await sessions.resolve(actor.sessionId);
      if (!isLive(state, now())) throw new UnauthorizedError(INVALID_TOKEN_MESSAGE);
      return presentUser(state.user);
    },
  };

  async function issueMfaChallenge(userId: string, amr: string[]): Promise<MfaChallengeResult> {
    const token = newOpaqueToken();
    const challenge: MfaChallenge = { userId, amr, attempts: 0, expiresAt: now() + MFA_CHALLENGE_TTL_SECONDS * 1000 };
    await deps.mfaChallenges.set(challengeKey(token), JSON.stringify(challenge), MFA_CHALLENGE_TTL_SECONDS);
    return { mfa_required: true, mfa_token: token, expires_in: MFA_CHALLENGE_TTL_SECONDS };
  }

  async function handleReuse(sessionId: string, context: RequestContext): Promise<void> {
    const found = await deps.sessionsRepository.findWithUser(db, sessionId);
    if (!found) return;
    const userId = found.user.id;
    await withTransaction(
      db,
      async (uow) => {
        const revoked = await sessions.revokeSession(uow, { userId, sessionId, reason: 'refresh_token_reuse' });
        await audit.record(uow.tx, {
          eventType: 'TOKEN_REUSE_DETECTED',
          userId,
          sessionId,
          resourceType: 'session',
          resourceId: sessionId,
          details: { token_family_revoked: revoked, session_created_at: found.session.createdAt.toISOString() },
          context,
        });
      },
      deps.logger,
    );
    const alert = deps.securityAlert?.();
    if (alert) {
      await alert({
        userId,
        title: 'Your session was ended for your protection',
        message:
          'A refresh token of one of your sessions was used twice, which happens when a token is copied. That session has been signed out; sign in again, and change your password if you did not expect this.',
        data: { session_id: sessionId, reason: 'refresh_token_reuse', ip_address: context.ipAddress },
      }).catch((error: unknown) => deps.logger?.warn({ err: error }, 'security alert failed'));
    }
  }
}

export type AuthService = ReturnType<typeof createAuthService>;

import type { Db } from '../../../db/client.js';
import { withTransaction } from '../../../db/unit-of-work.js';
import { ConflictError, NotFoundError, UnauthorizedError, ValidationError } from '../../../lib/errors.js';
import type { AuditRecorder } from '../../audit/audit.service.js';
import type { UsersRepository } from '../../users/users.repository.js';
import type { FieldEncryptionService } from '../../vault/field-cipher.js';
import type { AuthService, LoginResult } from '../auth.service.js';
import type { LoginThrottle } from '../login-throttle.js';
import type { Actor, RequestContext } from '../permissions.js';
import type { SessionsRepository } from '../sessions.repository.js';
import type { SessionService } from '../sessions.service.js';
import type { MfaRepository, TotpRow } from './mfa.repository.js';
import { hashRecoveryCode, matchTotp, newRecoveryCodes, newTotpSecret, otpauthUri, qrDataUrl } from './totp.js';

/** The field-cipher binding of a user's TOTP secret: a ciphertext moved to another row does not open. */
export const totpSecretAad = (userId: string) => `user_totp:${userId}:secret`;

const INVALID_CODE = 'The code is not valid: wrong, expired or already used';
const INVALID_MFA_LOGIN = 'Invalid code; try again with a new code';

export interface MfaServiceDeps {
  db: Db;
  repository: MfaRepository;
  usersRepository: Pick<UsersRepository, 'findById'>;
  sessionsRepository: Pick<SessionsRepository, 'markMfaVerified'>;
  sessions: Pick<SessionService, 'userChanged' | 'sessionChanged'>;
  auth: Pick<AuthService, 'takeMfaChallenge' | 'retryMfaChallenge' | 'openSession'>;
  throttle: Pick<LoginThrottle, 'beginAccountAttempt' | 'recordSuccess'>;
  fieldCipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  audit: Pick<AuditRecorder, 'record' | 'recordStandalone'>;
  stepUpSeconds: number;
  now?: () => number;
  logger?: { warn(obj: object, msg: string): void };
}

/** A second factor as a person sends it: a TOTP code, or one of their recovery codes. */
export interface FactorInput {
  code?: string;
  recoveryCode?: string;
}

type Verified = { method: 'totp' } | { method: 'recovery_code'; remaining: number };

/**
 * TOTP enrolment and removal, the second step of a login, and step-up for sensitive actions. Wrong codes count
 * against the account like failed logins (LOGIN_MAX_FAILURES per 15 minutes, shared by every instance).
 */
export function createMfaService(deps: MfaServiceDeps) {
  const { db, repository, audit } = deps;
  const now = deps.now ?? (() => Date.now());
  const throttleKey = (userId: string) => `mfa:${userId}`;

  function secretOf(row: TotpRow): string {
    return deps.fieldCipher.decrypt(row.secretCiphertext, totpSecretAad(row.userId));
  }

  async function recordFailure(userId: string, sessionId: string | null, purpose: string, context: RequestContext): Promise<void> {
    await audit.recordStandalone({ eventType: 'MFA_FAILED', userId, sessionId, resourceType: 'user', resourceId: userId, details: { purpose }, context });
  }

  /** A TOTP code against a factor in the given state; claims its time step (so it works once). */
  async function checkTotp(row: TotpRow, code: string, confirmed: boolean): Promise<boolean> {
    const step = await matchTotp(secretOf(row), code, { afterStep: row.lastUsedStep, nowMs: now() });
    return step !== null && (await repository.claimStep(db, row.userId, step, confirmed));
  }

  /** Checks a code or recovery code of a confirmed factor; counts the attempt first (429 when over the limit). */
  async function verifyFactor(userId: string, input: FactorInput): Promise<Verified | null> {
    await deps.throttle.beginAccountAttempt(throttleKey(userId));
    const row = await repository.findTotp(db, userId);
    if (!row?.confirmedAt) return null;
    let verified: Verified | null = null;
    if (input.code !== undefined) {
      if (await checkTotp(row, input.code, true)) verified = { method: 'totp' };
    } else if (input.recoveryCode !== undefined) {
      const { used, remaining } = await repository.useRecoveryCode(db, userId, hashRecoveryCode(input.recoveryCode), new Date(now()));
      if (used) verified = { method: 'recovery_code', remaining };
    }
    if (verified) await deps.throttle.recordSuccess(throttleKey(userId));
    return verified;
  }

  function requireOneFactor(input: FactorInput): void {
    if ((input.code === undefined) === (input.recoveryCode === undefined)) {
      throw new ValidationError('Send either code or recovery_code', [{ pointer: '/', detail: 'exactly one of code, recovery_code is required' }]);
    }
  }

  return {
    /** Starts (or restarts) enrolment: a new secret, pending until confirmed with a code from it. */
    async enroll(actor: Actor): Promise<{ secret: string; otpauth_uri: string; qr_data_url: string }> {
      const user = await deps.usersRepository.findById(db, actor.userId);
      if (!user) throw new NotFoundError('User');
      if (user.mfaEnabled) throw new ConflictError('A second factor is already enrolled; remove it first (DELETE /auth/mfa/totp)');
      const secret = newTotpSecret();
      const stored = await repository.putPendingTotp(db, user.id, deps.fieldCipher.encrypt(secret, totpSecretAad(user.id)));
      if (!stored) throw new ConflictError('A second factor is already enrolled; remove it first (DELETE /auth/mfa/totp)');
      const uri = otpauthUri(secret, user.username);
      return { secret, otpauth_uri: uri, qr_data_url: await qrDataUrl(uri) };
    },

    /**
     * A code from the pending secret proves the authenticator has it: the factor is enabled, ten recovery codes are
     * made (returned this once, stored hashed), and this session counts as MFA-verified.
     */
    async confirm(actor: Actor, code: string, context: RequestContext): Promise<{ recovery_codes: string[] }> {
      await deps.throttle.beginAccountAttempt(throttleKey(actor.userId));
      const row = await repository.findTotp(db, actor.userId);
      if (!row) throw new NotFoundError('Pending enrolment');
      if (row.confirmedAt) throw new ConflictError('The second factor is already confirmed');
      if (!(await checkTotp(row, code, false))) {
        await recordFailure(actor.userId, actor.sessionId, 'enrolment', context);
        throw new ValidationError(INVALID_CODE, [{ pointer: '/code', detail: 'is not a valid code' }]);
      }
      await deps.throttle.recordSuccess(throttleKey(actor.userId));
      const codes = newRecoveryCodes();
      const at = new Date(now());
      await withTransaction(
        db,
        async (uow) => {
          await repository.confirmTotp(uow.tx, actor.userId, at);
          await repository.replaceRecoveryCodes(uow.tx, actor.userId, codes.map(hashRecoveryCode));
          await deps.sessionsRepository.markMfaVerified(uow.tx, actor.sessionId, at);
          await audit.record(uow.tx, {
            eventType: 'MFA_ENROLLED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'user',
            resourceId: actor.userId,
            details: { method: 'totp', recovery_codes: codes.length },
            context,
          });
          deps.sessions.userChanged(uow, actor.userId);
        },
        deps.logger,
      );
      return { recovery_codes: codes };
    },

    /** Removing the factor needs a fresh code from it (not a recovery code: losing the phone is what those are for at login). */
    async disable(actor: Actor, code: string, context: RequestContext): Promise<void> {
      const current = await repository.findTotp(db, actor.userId);
      if (!current?.confirmedAt) throw new NotFoundError('Second factor');
      const verified = await verifyFactor(actor.userId, { code });
      if (!verified) {
        await recordFailure(actor.userId, actor.sessionId, 'disable', context);
        throw new ValidationError(INVALID_CODE, [{ pointer: '/code', detail: 'is not a valid code' }]);
      }
      await withTransaction(
        db,
        async (uow) => {
          await repository.removeFactor(uow.tx, actor.userId);
          await audit.record(uow.tx, {
            eventType: 'MFA_DISABLED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'user',
            resourceId: actor.userId,
            details: { method: 'totp' },
            context,
          });
          deps.sessions.userChanged(uow, actor.userId);
        },
        deps.logger,
      );
    },

    /** The second step of a login: the challenge from the password step plus a code (or a recovery code, once). */
    async verifyLogin(mfaToken: string, input: FactorInput, context: RequestContext): Promise<LoginResult> {
      requireOneFactor(input);
      const challenge = await deps.auth.takeMfaChallenge(mfaToken);
      const user = await deps.usersRepository.findById(db, challenge.userId);
      if (!user || !user.isActive || !user.mfaEnabled) throw new UnauthorizedError(INVALID_MFA_LOGIN);
      const verified = await verifyFactor(user.id, input);
      if (!verified) {
        await recordFailure(user.id, null, 'login', context);
        await deps.auth.retryMfaChallenge(mfaToken, challenge);
        throw new UnauthorizedError(INVALID_MFA_LOGIN);
      }
      return deps.auth.openSession(
        user,
        {
          amr: [...new Set([...challenge.amr, 'otp'])],
          mfaVerified: true,
          audit: [
            ...(challenge.amr.includes('fed') ? [{ eventType: 'SSO_LOGIN' as const, details: { second_factor: true } }] : []),
            { eventType: 'MFA_VERIFIED', details: { purpose: 'login', method: verified.method } },
            ...(verified.method === 'recovery_code'
              ? [{ eventType: 'RECOVERY_CODE_USED' as const, details: { remaining: verified.remaining } }]
              : []),
          ],
        },
        context,
      );
    },

    /**
     * Step-up: a fresh code marks this session MFA-verified for MFA_STEP_UP_SECONDS. The state is kept on the session
     * (server side), not in a new token, so it applies at once to the caller's current access token on every
     * instance and ends with the session (logout, revocation).
     */
    async stepUp(actor: Actor, input: FactorInput, context: RequestContext): Promise<{ mfa_verified_at: string; expires_in: number }> {
      requireOneFactor(input);
      const verified = await verifyFactor(actor.userId, input);
      if (!verified) {
        await recordFailure(actor.userId, actor.sessionId, 'step_up', context);
        throw new ValidationError(INVALID_CODE, [{ pointer: input.code !== undefined ? '/code' : '/recovery_code', detail: 'is not valid' }]);
      }
      const at = new Date(now());
      await withTransaction(
        db,
        async (uow) => {
          await deps.sessionsRepository.markMfaVerified(uow.tx, actor.sessionId, at);
          await audit.record(uow.tx, {
            eventType: 'MFA_VERIFIED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'session',
            resourceId: actor.sessionId,
            details: { purpose: 'step_up', method: verified.method },
            context,
          });
          if (verified.method === 'recovery_code') {
            await audit.record(uow.tx, {
              eventType: 'RECOVERY_CODE_USED',
              userId: actor.userId,
              sessionId: actor.sessionId,
              resourceType: 'user',
              resourceId: actor.userId,
              details: { remaining: verified.remaining },
              context,
            });
          }
          deps.sessions.sessionChanged(uow, actor.userId, actor.sessionId);
        },
        deps.logger,
      );
      return { mfa_verified_at: at.toISOString(), expires_in: deps.stepUpSeconds };
    },
  };
}

export type MfaService = ReturnType<typeof createMfaService>;

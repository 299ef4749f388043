import { AppError } from '../../../lib/errors.js';
import type { Actor } from '../permissions.js';

/** 403 `urn:cdsa:problem:mfa-enrollment-required`: the role requires a second factor and none is enrolled yet. */
export class MfaEnrollmentRequiredError extends AppError {
  readonly status = 403;
  readonly title = 'MFA Enrollment Required';
  constructor() {
    super('Your role requires multi-factor authentication: enrol a TOTP authenticator (POST /api/v1/auth/mfa/totp/enroll) first');
  }
}

/** 401 `urn:cdsa:problem:step-up-required` (CONTRACT §4): a sensitive action needs a fresh second-factor code. */
export class StepUpRequiredError extends AppError {
  readonly status = 401;
  readonly title = 'Step-up Required';
  constructor(windowSeconds: number) {
    super(`This action needs a second-factor verification in the last ${windowSeconds} seconds; send a code to POST /api/v1/auth/mfa/step-up`);
    this.headers['WWW-Authenticate'] = 'Bearer error="insufficient_user_authentication"';
    this.extensions.step_up_window_seconds = windowSeconds;
  }
}

/**
 * Step-up is enforced for users who have a second factor or whose role requires one. Someone with neither (a role
 * outside MFA_REQUIRED_ROLES, never enrolled) has nothing to step up with: the organisation chose not to require it,
 * and the action is recorded as not MFA-verified.
 */
export function stepUpApplies(actor: Actor): boolean {
  return actor.mfa !== undefined && (actor.mfa.enabled || actor.mfa.required);
}

export function stepUpFresh(actor: Actor, windowSeconds: number, now: number): boolean {
  const verifiedAt = actor.mfa?.verifiedAt ?? null;
  return actor.mfa?.enabled === true && verifiedAt !== null && now - verifiedAt <= windowSeconds * 1000 && verifiedAt <= now + 30_000;
}

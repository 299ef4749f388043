import { createHash, randomBytes } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';

/** RFC 6238 defaults that every authenticator app understands: SHA-1, 6 digits, 30-second steps. */
export const TOTP_PERIOD_SECONDS = 30;
/** One step either side of now: tolerates a phone clock a little off, and the seconds it takes to type a code. */
const TOLERANCE_SECONDS = TOTP_PERIOD_SECONDS;
export const TOTP_ISSUER = 'CDSA';

export function newTotpSecret(): string {
  // 20 random bytes (160 bits, RFC 4226's recommendation), base32.
  return generateSecret({ length: 20 });
}

export function otpauthUri(secret: string, accountName: string): string {
  return generateURI({ issuer: TOTP_ISSUER, label: accountName, secret, period: TOTP_PERIOD_SECONDS, digits: 6 });
}

export function qrDataUrl(uri: string): Promise<string> {
  return QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
}

/**
 * The time step a code is valid for, or null. Steps at or before `afterStep` (the last one accepted for this user)
 * are refused, so a code cannot be replayed within its window; the caller then claims the step atomically.
 */
export async function matchTotp(secret: string, code: string, options: { afterStep: number | null; nowMs: number }): Promise<number | null> {
  if (!/^\d{6}$/.test(code)) return null;
  const result = await verify({
    secret,
    token: code,
    period: TOTP_PERIOD_SECONDS,
    epoch: Math.floor(options.nowMs / 1000),
    epochTolerance: TOLERANCE_SECONDS,
    ...(options.afterStep !== null ? { afterTimeStep: options.afterStep } : {}),
  });
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

export const RECOVERY_CODE_COUNT = 10;
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

function recoveryCode(): string {
  let code = '';
  while (code.length < 20) {
    for (const byte of randomBytes(32)) {
      // Rejection sampling keeps every letter equally likely (248 = 8 × 31).
      if (byte < 248 && code.length < 20) code += RECOVERY_ALPHABET[byte % RECOVERY_ALPHABET.length];
    }
  }
  return code.match(/.{5}/g)!.join('-');
}

/** Ten codes of 20 characters from a 31-letter alphabet (~99 bits each), shown as xxxxx-xxxxx-xxxxx-xxxxx. */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, recoveryCode);
}

/** Case, spaces and dashes do not matter when a person types a recovery code back. */
export function normaliseRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}

/** Full-entropy codes need no salt or slow hash (like refresh tokens): SHA-256 of the normalised code. */
export function hashRecoveryCode(code: string): string {
  return createHash('sha256').update(normaliseRecoveryCode(code)).digest('hex');
}

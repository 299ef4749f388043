import { createHash, createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';

export const FINGERPRINT_PREFIX = 'hmac-sha256:';
const MIN_KEY_BYTES = 32;

/**
 * HKDF-SHA256 (RFC 5869) with an empty salt: a key for one purpose, named by `info` (e.g. `cdsa/audit/fingerprint/v1`),
 * from a master key, so the master key itself is never used for two things.
 */
export function deriveKey(master: Buffer | KeyObject, info: string, length = 32): Buffer {
  if (info.length === 0) throw new TypeError('deriveKey needs a non-empty info string naming the purpose');
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, length));
}

export interface ValueFingerprinter {
  /** `hmac-sha256:<64 hex>`: equal values give equal fingerprints, and without the key nothing about the value. */
  fingerprint(value: string | Uint8Array): string;
}

/**
 * Keyed fingerprints of sensitive values (as Vault's audit devices do): they let an auditor see that two events
 * involve the same secret without storing it. A plain hash would not do: short values are found by brute force.
 */
export function createValueFingerprinter(key: Buffer | KeyObject): ValueFingerprinter {
  const secret = Buffer.isBuffer(key) ? createSecretKey(key) : key;
  if (secret.type !== 'secret' || (secret.symmetricKeySize ?? 0) < MIN_KEY_BYTES) {
    throw new TypeError(`Fingerprint key must be a secret key of at least ${MIN_KEY_BYTES} bytes`);
  }
  return {
    fingerprint(value) {
      return FINGERPRINT_PREFIX + createHmac('sha256', secret).update(value).digest('hex');
    },
  };
}

/**
 * Compares two strings (tokens, digests) in time independent of where they differ and of their lengths: both sides
 * are hashed first, so the comparison always runs over 32 bytes.
 */
export function timingSafeEqualStrings(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

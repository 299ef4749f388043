import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { isValidKeyId, type Keyring, type MasterKey } from './keyring.js';

/**
 * Envelope encryption for individual values (secrets, message content, tool arguments).
 *
 * Every value gets its own random 256-bit data key (DEK) and 96-bit nonce and is encrypted with AES-256-GCM. The DEK
 * is then encrypted ("wrapped") with AES-256-GCM under the active master key with its own random nonce. Rotating
 * master keys re-encrypts only that 32-byte DEK; the data part of the ciphertext is kept byte for byte.
 *
 * Serialized form (ASCII, safe in a text column; 124 characters plus the key id, plus 4/3 of the value's size):
 *
 *   v1.<keyId>.<wrapped DEK>.<nonce>.<ciphertext ‖ tag>
 *
 * with the last three parts in unpadded base64url: `wrapped DEK` = wrap nonce (12) ‖ encrypted DEK (32) ‖ tag (16),
 * `nonce` = the data nonce (12).
 *
 * Associated data (AAD) names the value's place, e.g. `secrets:<rowId>:value`. It is authenticated by both layers:
 * the data as `v1.data.<aad>` and the wrapped DEK as `v1.dek.<keyId>.<aad>`, so neither the whole ciphertext nor its
 * wrapped DEK decrypts anywhere else, and the key id in the header cannot be swapped. Decoding is strict (canonical
 * base64url only), so every change to the string is either rejected as malformed or fails authentication.
 */

const VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
const DEK_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const WRAPPED_BYTES = NONCE_BYTES + DEK_BYTES + TAG_BYTES;
const WRAPPED_CHARS = 80;
const NONCE_CHARS = 16;
const MIN_BODY_CHARS = 22;
const FRESH_BYTES = DEK_BYTES + 2 * NONCE_BYTES;

export type DecryptionErrorCode = 'malformed' | 'unsupported_version' | 'unknown_key' | 'authentication_failed';

/** A ciphertext that cannot be opened. Never carries plaintext or key material; `keyId` is not secret. */
export class DecryptionError extends Error {
  constructor(
    readonly code: DecryptionErrorCode,
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
    this.name = 'DecryptionError';
  }
}

export interface FieldCipher {
  /** The master key id new ciphertexts are written under. */
  readonly activeKeyId: string;
  /** Encrypts a value bound to `aad` (a non-empty string naming where it is stored, e.g. `secrets:<id>:value`). */
  encrypt(plaintext: string | Uint8Array, aad: string): string;
  /** Opens a ciphertext written for the same `aad`; throws DecryptionError otherwise. */
  decrypt(ciphertext: string, aad: string): Buffer;
  decryptString(ciphertext: string, aad: string): string;
  /** Whether the ciphertext is wrapped under a key other than the active one (checks structure, not authenticity). */
  needsRewrap(ciphertext: string): boolean;
  /**
   * Re-wraps the ciphertext's data key under the active key after authenticating it for `aad`; the data part is
   * unchanged and is not decrypted. Returns the input unchanged when it is already under the active key.
   */
  rewrap(ciphertext: string, aad: string): string;
  /** The master key id in the ciphertext's header (checks structure, not authenticity). */
  keyIdOf(ciphertext: string): string;
}

// Fresh DEKs and nonces are cut from a pooled CSPRNG buffer: one randomFillSync per ~70 values instead of one per
// value (a per-call draw costs as much as the AES-GCM of a small value). Bytes are handed out once, in order, and a
// DEK's bytes are zeroed as soon as its ciphers hold it, so the pool never keeps a used key.
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let poolOffset = POOL_BYTES;

function freshBytes(length: number): Buffer {
  if (poolOffset + length > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const view = pool.subarray(poolOffset, poolOffset + length);
  poolOffset += length;
  return view;
}

interface Segments {
  keyId: string;
  wrapped: string;
  nonce: string;
  body: string;
}

function malformed(detail: string): DecryptionError {
  return new DecryptionError('malformed', `Ciphertext is malformed: ${detail}`);
}

function requireContext(aad: string): string {
  if (typeof aad !== 'string' || aad.length === 0) {
    throw new TypeError('Associated data must be a non-empty string naming where the value is stored');
  }
  return aad;
}

/** Structural checks only: header, segment count and sizes, alphabet. Authenticity is checked by decryption. */
function split(ciphertext: string): Segments {
  if (typeof ciphertext !== 'string') throw malformed('expected a string');
  const parts = ciphertext.split('.');
  const version = parts[0]!;
  if (version !== VERSION) {
    if (/^v[0-9]{1,4}$/.test(version)) {
      throw new DecryptionError('unsupported_version', `Ciphertext format ${version} is not supported by this version of the service`);
    }
    throw malformed(`expected a '${VERSION}.' envelope`);
  }
  if (parts.length !== 5) throw malformed(`expected 5 dot-separated parts, found ${parts.length}`);
  const [, keyId, wrapped, nonce, body] = parts as [string, string, string, string, string];
  if (!isValidKeyId(keyId)) throw malformed('invalid key id');
  if (wrapped.length !== WRAPPED_CHARS) throw malformed('wrapped data key has the wrong length');
  if (nonce.length !== NONCE_CHARS) throw malformed('nonce has the wrong length');
  if (body.length < MIN_BODY_CHARS || body.length % 4 === 1) throw malformed('encrypted data has an impossible length');
  // Node's base64 decoder accepts '+', '/', '=' and maps non-ASCII characters to bytes; a canonical ciphertext has
  // none of them, and rejecting them here keeps the string-to-bytes mapping one-to-one.
  if (Buffer.byteLength(ciphertext, 'utf8') !== ciphertext.length) throw malformed('non-ASCII characters');
  if (ciphertext.includes('+') || ciphertext.includes('/') || ciphertext.includes('=')) {
    throw malformed('characters outside the base64url alphabet');
  }
  return { keyId, wrapped, nonce, body };
}

function base64urlValue(code: number): number {
  if (code >= 65 && code <= 90) return code - 65;
  if (code >= 97 && code <= 122) return code - 71;
  if (code >= 48 && code <= 57) return code + 4;
  if (code === 45) return 62;
  if (code === 95) return 63;
  return -1;
}

function decode(segment: string, what: string): Buffer {
  const bytes = Buffer.from(segment, 'base64url');
  // The decoder skips characters outside the alphabet, which shows up as fewer bytes than the length implies.
  if (bytes.length !== (segment.length * 3) >>> 2) throw malformed(`${what} is not valid base64url`);
  // The unused low bits of a final partial group must be zero, or two strings would decode to the same bytes.
  const partial = segment.length % 4;
  if (partial !== 0) {
    const unusedBits = partial === 2 ? 0x0f : 0x03;
    if ((base64urlValue(segment.charCodeAt(segment.length - 1)) & unusedBits) !== 0) {
      throw malformed(`${what} is not canonical base64url`);
    }
  }
  return bytes;
}

function encodeBody(ciphertext: Buffer, tag: Buffer): string {
  const whole = ciphertext.length - (ciphertext.length % 3);
  // Large values: encode the ciphertext in place and only the last partial group with the tag, saving a full copy.
  if (whole < 3072) return Buffer.concat([ciphertext, tag]).toString('base64url');
  return ciphertext.toString('base64url', 0, whole) + Buffer.concat([ciphertext.subarray(whole), tag]).toString('base64url');
}

const dataAad = (aad: string): Buffer => Buffer.from(`${VERSION}.data.${aad}`, 'utf8');
const wrapAad = (keyId: string, aad: string): Buffer => Buffer.from(`${VERSION}.dek.${keyId}.${aad}`, 'utf8');

function wrapDek(master: MasterKey, dek: Buffer, wrapNonce: Buffer, aad: string): string {
  const cipher = createCipheriv(ALGORITHM, master.key, wrapNonce);
  cipher.setAAD(wrapAad(master.id, aad));
  const encrypted = cipher.update(dek);
  cipher.final();
  return Buffer.concat([wrapNonce, encrypted, cipher.getAuthTag()], WRAPPED_BYTES).toString('base64url');
}

function authenticationFailed(keyId: string): DecryptionError {
  return new DecryptionError(
    'authentication_failed',
    `Ciphertext failed authentication under key '${keyId}': it was altered, or it belongs to another record or field`,
    keyId,
  );
}

function unwrapDek(master: MasterKey, wrapped: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv(ALGORITHM, master.key, wrapped.subarray(0, NONCE_BYTES));
  decipher.setAAD(wrapAad(master.id, aad));
  decipher.setAuthTag(wrapped.subarray(NONCE_BYTES + DEK_BYTES));
  const dek = decipher.update(wrapped.subarray(NONCE_BYTES, NONCE_BYTES + DEK_BYTES));
  try {
    decipher.final();
  } catch {
    dek.fill(0);
    throw authenticationFailed(master.id);
  }
  return dek;
}

/** Whether `value` has the shape of a field ciphertext (no key needed; says nothing about authenticity). */
export function isFieldCiphertext(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    split(value);
    return true;
  } catch {
    return false;
  }
}

export function createFieldCipher(keyring: Keyring): FieldCipher {
  function masterFor(keyId: string): MasterKey {
    const master = keyring.get(keyId);
    if (!master) {
      throw new DecryptionError('unknown_key', `Ciphertext is under key '${keyId}', which is not in ENCRYPTION_KEYS`, keyId);
    }
    return master;
  }

  function decrypt(ciphertext: string, aad: string): Buffer {
    requireContext(aad);
    const segments = split(ciphertext);
    const wrapped = decode(segments.wrapped, 'wrapped data key');
    const nonce = decode(segments.nonce, 'nonce');
    const body = decode(segments.body, 'encrypted data');
    const dek = unwrapDek(masterFor(segments.keyId), wrapped, aad);
    try {
      const end = body.length - TAG_BYTES;
      const decipher = createDecipheriv(ALGORITHM, dek, nonce);
      decipher.setAAD(dataAad(aad));
      decipher.setAuthTag(body.subarray(end));
      const plaintext = decipher.update(body.subarray(0, end));
      try {
        decipher.final();
      } catch {
        // GCM releases plaintext before checking the tag; it must not outlive the failure.
        plaintext.fill(0);
        throw authenticationFailed(segments.keyId);
      }
      return plaintext;
    } finally {
      dek.fill(0);
    }
  }

  return {
    get activeKeyId() {
      return keyring.active.id;
    },

    encrypt(plaintext, aad) {
      requireContext(aad);
      if (typeof plaintext !== 'string' && !(plaintext instanceof Uint8Array)) {
        throw new TypeError('Plaintext must be a string or a Buffer');
      }
      const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
      const active = keyring.active;
      const fresh = freshBytes(FRESH_BYTES);
      const dek = fresh.subarray(0, DEK_BYTES);
      const nonce = fresh.subarray(DEK_BYTES, DEK_BYTES + NONCE_BYTES);
      const wrapNonce = fresh.subarray(DEK_BYTES + NONCE_BYTES);
      let body: string;
      let wrapped: string;
      try {
        const cipher = createCipheriv(ALGORITHM, dek, nonce);
        cipher.setAAD(dataAad(aad));
        const encrypted = cipher.update(data);
        cipher.final();
        body = encodeBody(encrypted, cipher.getAuthTag());
        wrapped = wrapDek(active, dek, wrapNonce, aad);
      } finally {
        dek.fill(0);
      }
      return `${VERSION}.${active.id}.${wrapped}.${nonce.toString('base64url')}.${body}`;
    },

    decrypt,

    decryptString(ciphertext, aad) {
      const plaintext = decrypt(ciphertext, aad);
      const text = plaintext.toString('utf8');
      plaintext.fill(0);
      return text;
    },

    needsRewrap(ciphertext) {
      return split(ciphertext).keyId !== keyring.active.id;
    },

    rewrap(ciphertext, aad) {
      requireContext(aad);
      const segments = split(ciphertext);
      const wrapped = decode(segments.wrapped, 'wrapped data key');
      decode(segments.nonce, 'nonce');
      const dek = unwrapDek(masterFor(segments.keyId), wrapped, aad);
      try {
        const active = keyring.active;
        if (segments.keyId === active.id) return ciphertext;
        const rewrapped = wrapDek(active, dek, freshBytes(NONCE_BYTES), aad);
        return `${VERSION}.${active.id}.${rewrapped}.${segments.nonce}.${segments.body}`;
      } finally {
        dek.fill(0);
      }
    },

    keyIdOf(ciphertext) {
      return split(ciphertext).keyId;
    },
  };
}

import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

/** Master keys are AES-256 keys. */
export const MASTER_KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
// Standard or URL-safe base64, padding optional; Buffer.from would otherwise skip stray characters silently.
const BASE64 = /^(?:[A-Za-z0-9+/]+|[A-Za-z0-9_-]+)={0,2}$/;

/**
 * A configuration problem with the master keys. The message names the variable and the entry, never key material,
 * so it is safe to log and to show at start-up.
 */
export class KeyringError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable} ${detail}`);
    this.name = 'KeyringError';
  }
}

export interface MasterKey {
  readonly id: string;
  /** Held as a KeyObject so the bytes never sit in a printable Buffer (inspecting it shows only its size). */
  readonly key: KeyObject;
}

export interface Keyring {
  /** The key new ciphertexts are written under: the first one configured. */
  readonly active: MasterKey;
  /** All key ids, active first. Every one of them can decrypt. */
  readonly ids: readonly string[];
  get(id: string): MasterKey | undefined;
}

export interface KeyringEntry {
  id: string;
  key: Buffer | KeyObject;
}

export function isValidKeyId(id: string): boolean {
  return KEY_ID.test(id);
}

/** Builds a keyring from already decoded keys; the first entry becomes the active key. */
export function createKeyring(entries: readonly KeyringEntry[], variable = 'ENCRYPTION_KEYS'): Keyring {
  if (entries.length === 0) throw new KeyringError(variable, 'must contain at least one key');
  const keys = new Map<string, MasterKey>();
  entries.forEach((entry, index) => {
    const where = `entry ${index + 1}`;
    if (!isValidKeyId(entry.id)) {
      throw new KeyringError(variable, `${where}: key id must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'`);
    }
    if (keys.has(entry.id)) throw new KeyringError(variable, `${where}: key id '${entry.id}' appears more than once`);
    const key = Buffer.isBuffer(entry.key) ? createSecretKey(entry.key) : entry.key;
    if (key.type !== 'secret' || key.symmetricKeySize !== MASTER_KEY_BYTES) {
      throw new KeyringError(variable, `${where} ('${entry.id}'): key must be ${MASTER_KEY_BYTES} bytes`);
    }
    keys.set(entry.id, Object.freeze({ id: entry.id, key }));
  });
  const ids = Object.freeze([...keys.keys()]);
  const active = keys.get(ids[0]!)!;
  return Object.freeze({ active, ids, get: (id: string) => keys.get(id) });
}

/**
 * Parses `id:base64key[,id:base64key...]` (32-byte keys, ids `[A-Za-z0-9_-]{1,32}`). The first key is active, all of
 * them decrypt: to rotate, put a new key first, rewrap, then drop the old one.
 */
export function parseKeyring(value: string | undefined, variable = 'ENCRYPTION_KEYS'): Keyring {
  if (value === undefined || value.trim() === '') throw new KeyringError(variable, 'is empty; expected id:base64key[,id:base64key...]');
  const entries = value.split(',').map((raw, index): KeyringEntry => {
    const where = `entry ${index + 1}`;
    const part = raw.trim();
    const colon = part.indexOf(':');
    if (colon <= 0) throw new KeyringError(variable, `${where}: expected id:base64key`);
    const id = part.slice(0, colon);
    const encoded = part.slice(colon + 1);
    if (!isValidKeyId(id)) {
      throw new KeyringError(variable, `${where}: key id must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'`);
    }
    if (!BASE64.test(encoded)) throw new KeyringError(variable, `${where} ('${id}'): key is not valid base64`);
    const bytes = Buffer.from(encoded, encoded.includes('-') || encoded.includes('_') ? 'base64url' : 'base64');
    try {
      if (bytes.length !== MASTER_KEY_BYTES) {
        throw new KeyringError(variable, `${where} ('${id}'): key must decode to ${MASTER_KEY_BYTES} bytes, not ${bytes.length}`);
      }
      return { id, key: createSecretKey(bytes) };
    } finally {
      // createSecretKey copied the bytes; do not leave a second copy on the heap.
      bytes.fill(0);
    }
  });
  return createKeyring(entries, variable);
}

/** A fresh random master key, base64-encoded, for an `ENCRYPTION_KEYS` entry. */
export function generateKey(): string {
  const bytes = randomBytes(MASTER_KEY_BYTES);
  const encoded = bytes.toString('base64');
  bytes.fill(0);
  return encoded;
}

/** A complete `id:base64key` entry with a fresh key. */
export function generateKeyringEntry(id: string): string {
  if (!isValidKeyId(id)) throw new KeyringError('ENCRYPTION_KEYS', `key id '${id}' must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'`);
  return `${id}:${generateKey()}`;
}

import { AppError } from '../../lib/errors.js';
import { createFieldCipher, DecryptionError, type DecryptionErrorCode, type FieldCipher } from '../../lib/crypto/envelope.js';
import { parseKeyring } from '../../lib/crypto/keyring.js';

/**
 * A stored ciphertext that cannot be opened: altered, moved to another row or column, or under a key that is no
 * longer configured. A server-side fault (500), never garbage; the message says what happened, not the value.
 */
export class EncryptedDataError extends AppError {
  readonly status = 500;
  readonly title = 'Internal Server Error';

  constructor(
    readonly code: DecryptionErrorCode,
    options: { cause?: unknown } = {},
  ) {
    super(
      code === 'unknown_key'
        ? 'Stored encrypted data is under an encryption key that is not configured; it was not returned'
        : 'Stored encrypted data failed its integrity check; it was not returned',
    );
    this.cause = options.cause;
  }
}

/** One row as rotation hands it to `aad`: the row id (as text) plus the `aadColumns` asked for. */
export interface EncryptedColumnRow {
  id: string;
  [column: string]: unknown;
}

/**
 * A column holding field ciphertexts, registered so key rotation rewraps it. Table and column names are SQL
 * identifiers written in code (lower-case snake_case), never taken from input.
 */
export interface EncryptedColumn {
  /** Unique, for reports and logs, e.g. `chat_messages.content`. */
  name: string;
  table: string;
  /** The primary key column (default `id`); rows are visited in its order. */
  idColumn?: string;
  column: string;
  /** Other columns `aad` needs, e.g. `['session_id']`. */
  aadColumns?: readonly string[];
  /** The associated data the row's value was encrypted with; must match what the writer used. */
  aad: (row: EncryptedColumnRow) => string;
}

export interface FieldEncryptionService {
  /** The key new values are written under (the first of ENCRYPTION_KEYS). */
  readonly activeKeyId: string;
  /** Encrypts a value bound to `aad`, which names its row and column, e.g. `chat_messages:<id>:content`. */
  encrypt(value: string | Uint8Array, aad: string): string;
  /** Opens a ciphertext written for the same `aad`; throws EncryptedDataError (500) otherwise. */
  decrypt(ciphertext: string, aad: string): string;
  decryptBytes(ciphertext: string, aad: string): Buffer;
  /** Adds a column to key rotation. Call while the app is being built (in a module plugin). */
  registerEncryptedColumn(column: EncryptedColumn): void;
  encryptedColumns(): readonly EncryptedColumn[];
  /** The envelope cipher itself, for rotation (which needs its typed DecryptionError and rewrap). */
  readonly cipher: FieldCipher;
}

export interface FieldEncryptionLogger {
  error(obj: object, msg: string): void;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

function requireIdentifier(what: string, value: string): void {
  if (!IDENTIFIER.test(value)) {
    throw new TypeError(`Encrypted column ${what} '${value}' must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)`);
  }
}

export function validateEncryptedColumn(column: EncryptedColumn): void {
  if (!column.name) throw new TypeError('Encrypted column needs a name');
  requireIdentifier('table', column.table);
  requireIdentifier('id column', column.idColumn ?? 'id');
  requireIdentifier('column', column.column);
  for (const extra of column.aadColumns ?? []) requireIdentifier('aad column', extra);
  if (typeof column.aad !== 'function') throw new TypeError(`Encrypted column ${column.name} needs an aad function`);
}

/** Field-level encryption for every module, over the envelope cipher and the keys in ENCRYPTION_KEYS. */
export function createFieldEncryptionService(encryptionKeys: string, logger?: FieldEncryptionLogger): FieldEncryptionService {
  const cipher = createFieldCipher(parseKeyring(encryptionKeys));
  const columns = new Map<string, EncryptedColumn>();

  function decryptBytes(ciphertext: string, aad: string): Buffer {
    try {
      return cipher.decrypt(ciphertext, aad);
    } catch (error) {
      if (!(error instanceof DecryptionError)) throw error;
      // The associated data names the row and column (ids only), which is what an operator needs to investigate.
      logger?.error({ aad, code: error.code, key_id: error.keyId }, 'encrypted value could not be decrypted');
      throw new EncryptedDataError(error.code, { cause: error });
    }
  }

  return {
    get activeKeyId() {
      return cipher.activeKeyId;
    },
    encrypt: (value, aad) => cipher.encrypt(value, aad),
    decrypt(ciphertext, aad) {
      const bytes = decryptBytes(ciphertext, aad);
      const text = bytes.toString('utf8');
      bytes.fill(0);
      return text;
    },
    decryptBytes,
    registerEncryptedColumn(column) {
      validateEncryptedColumn(column);
      if (columns.has(column.name)) throw new TypeError(`Encrypted column ${column.name} is already registered`);
      for (const existing of columns.values()) {
        if (existing.table === column.table && existing.column === column.column) {
          throw new TypeError(`${column.table}.${column.column} is already registered as ${existing.name}`);
        }
      }
      columns.set(column.name, Object.freeze({ ...column }));
    },
    encryptedColumns: () => [...columns.values()],
    cipher,
  };
}

import { describe, expect, it } from 'vitest';
import { generateKeyringEntry } from '../../lib/crypto/keyring.js';
import { createFieldEncryptionService, EncryptedDataError, type EncryptedColumn } from './field-cipher.js';

const oldEntry = generateKeyringEntry('old');
const newEntry = generateKeyringEntry('new');

function flipByte(ciphertext: string, index: number): string {
  const parts = ciphertext.split('.');
  const body = Buffer.from(parts[4]!, 'base64url');
  body[index] = body[index]! ^ 0x01;
  parts[4] = body.toString('base64url');
  return parts.join('.');
}

function column(overrides: Partial<EncryptedColumn> = {}): EncryptedColumn {
  return { name: 'chat_messages.content', table: 'chat_messages', column: 'content', aad: (row) => `chat_messages:${row.id}:content`, ...overrides };
}

describe('field encryption service', () => {
  it('round-trips a value bound to its place, and never stores it in the clear', () => {
    const cipher = createFieldEncryptionService(oldEntry);
    const ciphertext = cipher.encrypt('sk-live-abcdef', 'secrets:1:v1');
    expect(ciphertext.startsWith('v1.old.')).toBe(true);
    expect(ciphertext).not.toContain('sk-live-abcdef');
    expect(Buffer.from(ciphertext.split('.')[4]!, 'base64url').toString('latin1')).not.toContain('sk-live');
    expect(cipher.decrypt(ciphertext, 'secrets:1:v1')).toBe('sk-live-abcdef');
    expect(cipher.decryptBytes(ciphertext, 'secrets:1:v1').toString('utf8')).toBe('sk-live-abcdef');
  });

  it('refuses a ciphertext moved to another row with a 500-class error that does not contain the value', () => {
    const errors: object[] = [];
    const cipher = createFieldEncryptionService(oldEntry, { error: (obj) => errors.push(obj) });
    const ciphertext = cipher.encrypt('p4ssw0rd-value', 'secrets:row-a:v1');
    let caught: unknown;
    try {
      cipher.decrypt(ciphertext, 'secrets:row-b:v1');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(EncryptedDataError);
    const error = caught as EncryptedDataError;
    expect(error.status).toBe(500);
    expect(error.code).toBe('authentication_failed');
    expect(error.message).toMatch(/integrity check/);
    expect(error.message).not.toContain('p4ssw0rd');
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0])).not.toContain('p4ssw0rd');
    expect(errors[0]).toMatchObject({ aad: 'secrets:row-b:v1', code: 'authentication_failed' });
  });

  it('fails loudly on one flipped byte anywhere in the encrypted data instead of returning garbage', () => {
    const cipher = createFieldEncryptionService(oldEntry);
    const ciphertext = cipher.encrypt('a value long enough to flip bytes in', 'tools:1:args');
    for (const index of [0, 10, 20]) {
      expect(() => cipher.decrypt(flipByte(ciphertext, index), 'tools:1:args')).toThrow(EncryptedDataError);
    }
  });

  it('decrypts with any configured key but writes with the first, and names a missing key', () => {
    const before = createFieldEncryptionService(oldEntry);
    const ciphertext = before.encrypt('value', 'x:1:y');
    const both = createFieldEncryptionService(`${newEntry},${oldEntry}`);
    expect(both.activeKeyId).toBe('new');
    expect(both.decrypt(ciphertext, 'x:1:y')).toBe('value');
    expect(both.encrypt('value', 'x:1:y').startsWith('v1.new.')).toBe(true);
    const rewrapped = both.cipher.rewrap(ciphertext, 'x:1:y');
    const onlyNew = createFieldEncryptionService(newEntry);
    expect(onlyNew.decrypt(rewrapped, 'x:1:y')).toBe('value');
    expect(() => onlyNew.decrypt(ciphertext, 'x:1:y')).toThrow(/not configured/);
  });

  it('registers encrypted columns whose names are SQL identifiers, once each', () => {
    const cipher = createFieldEncryptionService(oldEntry);
    cipher.registerEncryptedColumn(column());
    expect(cipher.encryptedColumns().map((item) => item.name)).toEqual(['chat_messages.content']);
    expect(() => cipher.registerEncryptedColumn(column())).toThrow(/already registered/);
    expect(() => cipher.registerEncryptedColumn(column({ name: 'other' }))).toThrow(/already registered/);
    expect(() => cipher.registerEncryptedColumn(column({ name: 'bad', table: 'chat_messages; drop table users' }))).toThrow(/SQL identifier/);
    expect(() => cipher.registerEncryptedColumn(column({ name: 'bad', column: 'Content' }))).toThrow(/SQL identifier/);
    expect(() => cipher.registerEncryptedColumn(column({ name: 'bad', column: 'args', aadColumns: ['session-id'] }))).toThrow(/SQL identifier/);
  });
});

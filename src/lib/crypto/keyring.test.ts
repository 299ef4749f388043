import { createSecretKey, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { KeyringError, createKeyring, generateKey, generateKeyringEntry, parseKeyring } from './keyring.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);

function thrown(fn: () => unknown): KeyringError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KeyringError);
    return error as KeyringError;
  }
  throw new Error('expected a KeyringError');
}

describe('parseKeyring', () => {
  it('makes the first key active and keeps every key for decryption, in order', () => {
    const keyring = parseKeyring(`new:${keyB.toString('base64')}, old:${keyA.toString('base64')}`);
    expect(keyring.active.id).toBe('new');
    expect(keyring.ids).toEqual(['new', 'old']);
    expect(keyring.get('old')?.key.export().equals(keyA)).toBe(true);
    expect(keyring.get('new')?.key.export().equals(keyB)).toBe(true);
    expect(keyring.get('missing')).toBeUndefined();
  });

  it('accepts unpadded and URL-safe base64', () => {
    const keyring = parseKeyring(`k_1:${keyA.toString('base64url')},K-2:${keyB.toString('base64').replace(/=+$/, '')}`);
    expect(keyring.get('k_1')?.key.export().equals(keyA)).toBe(true);
    expect(keyring.get('K-2')?.key.export().equals(keyB)).toBe(true);
  });

  it('rejects duplicate ids, naming the variable and the id but not the key', () => {
    const a = keyA.toString('base64');
    const error = thrown(() => parseKeyring(`k1:${a},k1:${keyB.toString('base64')}`));
    expect(error.message).toMatch(/^ENCRYPTION_KEYS entry 2: key id 'k1' appears more than once$/);
    expect(error.variable).toBe('ENCRYPTION_KEYS');
    expect(error.message).not.toContain(a.slice(0, 8));
  });

  it('rejects keys that are not 32 bytes without printing them', () => {
    const short = randomBytes(16).toString('base64');
    const long = randomBytes(33).toString('base64');
    const shortError = thrown(() => parseKeyring(`k1:${keyA.toString('base64')},k2:${short}`));
    expect(shortError.message).toBe("ENCRYPTION_KEYS entry 2 ('k2'): key must decode to 32 bytes, not 16");
    expect(thrown(() => parseKeyring(`k1:${long}`)).message).toContain('not 33');
    expect(shortError.message).not.toContain(short.slice(0, 8));
  });

  it('rejects malformed entries and ids without echoing them (a misplaced key could be in there)', () => {
    const key = keyA.toString('base64');
    const cases = [key, `${key}:k1`, `:${key}`, `bad id:${key}`, `${'x'.repeat(33)}:${key}`, `k1:not*base64!`, `k1:${key},`];
    for (const value of cases) {
      const error = thrown(() => parseKeyring(value));
      expect(error.message.startsWith('ENCRYPTION_KEYS ')).toBe(true);
      expect(error.message).not.toContain(key.slice(0, 8));
      expect(error.message).not.toContain('x'.repeat(33));
    }
    expect(thrown(() => parseKeyring(undefined)).message).toMatch(/ENCRYPTION_KEYS is empty/);
    expect(thrown(() => parseKeyring('  ')).message).toMatch(/ENCRYPTION_KEYS is empty/);
  });

  it('names another variable when asked to', () => {
    expect(thrown(() => parseKeyring('', 'OLD_KEYS')).message).toMatch(/^OLD_KEYS /);
  });

  it('does not reveal key bytes when the keyring is logged or serialized', () => {
    const keyring = parseKeyring(`k1:${keyA.toString('base64')}`);
    const shown = inspect(keyring, { depth: 10 }) + JSON.stringify(keyring);
    for (const encoding of ['base64', 'hex'] as const) {
      expect(shown).not.toContain(keyA.toString(encoding).slice(0, 12));
    }
  });
});

describe('createKeyring', () => {
  it('accepts Buffers and KeyObjects and checks their size', () => {
    const keyring = createKeyring([
      { id: 'a', key: keyA },
      { id: 'b', key: createSecretKey(keyB) },
    ]);
    expect(keyring.active.id).toBe('a');
    expect(thrown(() => createKeyring([{ id: 'a', key: randomBytes(24) }])).message).toMatch(/'a'\): key must be 32 bytes/);
    expect(thrown(() => createKeyring([])).message).toMatch(/at least one key/);
  });
});

describe('generateKey', () => {
  it('makes distinct 32-byte keys that parse back', () => {
    const first = generateKey();
    const second = generateKey();
    expect(Buffer.from(first, 'base64')).toHaveLength(32);
    expect(first).not.toBe(second);
    const keyring = parseKeyring(`${generateKeyringEntry('2025-06')},${generateKeyringEntry('2024-01')}`);
    expect(keyring.ids).toEqual(['2025-06', '2024-01']);
    expect(() => generateKeyringEntry('no spaces')).toThrow(KeyringError);
  });
});

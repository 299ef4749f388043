import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, createFieldCipher, isFieldCiphertext, type DecryptionErrorCode } from './envelope.js';
import { createKeyring, type Keyring } from './keyring.js';

const keyA = { id: 'keyA', key: randomBytes(32) };
const keyB = { id: 'keyB', key: randomBytes(32) };
const cipherA = createFieldCipher(createKeyring([keyA]));
const AAD = 'secrets:7d1c0a5e-1111-4c4c-8888-000000000001:value';
const OTHER_ROW = 'secrets:7d1c0a5e-1111-4c4c-8888-000000000002:value';

function decryptionError(fn: () => unknown): DecryptionError {
  try {
    fn();
  } catch (error) {
    if (error instanceof DecryptionError) return error;
    throw error;
  }
  throw new Error('expected a DecryptionError, but the ciphertext was accepted');
}

function expectRefused(fn: () => unknown, code?: DecryptionErrorCode): void {
  const error = decryptionError(fn);
  if (code) expect(error.code).toBe(code);
}

interface Parts {
  version: string;
  keyId: string;
  wrapped: Buffer;
  nonce: Buffer;
  body: Buffer;
}

function parts(ciphertext: string): Parts {
  const [version, keyId, wrapped, nonce, body] = ciphertext.split('.') as [string, string, string, string, string];
  return {
    version,
    keyId,
    wrapped: Buffer.from(wrapped, 'base64url'),
    nonce: Buffer.from(nonce, 'base64url'),
    body: Buffer.from(body, 'base64url'),
  };
}

function join(p: Parts): string {
  return [p.version, p.keyId, p.wrapped.toString('base64url'), p.nonce.toString('base64url'), p.body.toString('base64url')].join('.');
}

function flip(buffer: Buffer, index: number): Buffer {
  const copy = Buffer.from(buffer);
  copy[index]! ^= 0x01;
  return copy;
}

describe('field cipher round trips', () => {
  it.each([0, 1, 15, 16, 17, 64, 1024, 3071, 3072, 3073, 3074, 3075, 65536, 100_003])('encrypts and decrypts %i bytes', (size) => {
    const plaintext = randomBytes(size);
    const ciphertext = cipherA.encrypt(plaintext, AAD);
    expect(ciphertext).toMatch(/^v1\.keyA\.[A-Za-z0-9_-]{80}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$/);
    expect(cipherA.decrypt(ciphertext, AAD).equals(plaintext)).toBe(true);
  });

  it('round-trips text, including non-ASCII, and never shows it in the ciphertext', () => {
    const text = 'sk-live-ABCDEF0123456789 — clé très secrète 🔑';
    const ciphertext = cipherA.encrypt(text, AAD);
    expect(cipherA.decryptString(ciphertext, AAD)).toBe(text);
    expect(ciphertext).not.toContain('sk-live');
    expect(ciphertext).not.toContain(Buffer.from(text).toString('base64url').slice(0, 12));
  });

  it('uses a fresh nonce for every value, under one shared data key', () => {
    const first = parts(cipherA.encrypt('same', AAD));
    const second = parts(cipherA.encrypt('same', AAD));
    expect(first.wrapped.equals(second.wrapped)).toBe(true);
    expect(first.nonce.equals(second.nonce)).toBe(false);
    expect(first.body.equals(second.body)).toBe(false);
  });

  it('keeps working across many values (the nonce pool refills in between)', () => {
    const values = Array.from({ length: 1000 }, (_, i) => `value-${i}`);
    const ciphertexts = values.map((value, i) => {
      if (i % 7 === 0) cipherA.rewrap(cipherA.encrypt('x', AAD), AAD);
      return cipherA.encrypt(value, `${AAD}:${i}`);
    });
    expect(ciphertexts.map((c, i) => cipherA.decryptString(c, `${AAD}:${i}`))).toEqual(values);
    expect(new Set(ciphertexts.map((c) => c.split('.')[3])).size).toBe(values.length);
  });

  it('requires associated data', () => {
    expect(() => cipherA.encrypt('x', '')).toThrow(/Associated data must be a non-empty string/);
    const ciphertext = cipherA.encrypt('x', AAD);
    expect(() => cipherA.decrypt(ciphertext, '')).toThrow(TypeError);
  });

  it('exposes the key id and recognises its format', () => {
    const ciphertext = cipherA.encrypt('x', AAD);
    expect(cipherA.keyIdOf(ciphertext)).toBe('keyA');
    expect(cipherA.activeKeyId).toBe('keyA');
    expect(isFieldCiphertext(ciphertext)).toBe(true);
    expect(isFieldCiphertext('plain text')).toBe(false);
    expect(isFieldCiphertext(42)).toBe(false);
  });
});

describe('field cipher refuses what it must not open', () => {
  it('refuses a ciphertext under different associated data (copied to another row)', () => {
    const ciphertext = cipherA.encrypt('secret', AAD);
    const error = decryptionError(() => cipherA.decrypt(ciphertext, OTHER_ROW));
    expect(error.code).toBe('authentication_failed');
    expect(error.keyId).toBe('keyA');
    expect(error.message).toMatch(/failed authentication under key 'keyA'/);
    expectRefused(() => cipherA.decrypt(ciphertext, `${AAD} `), 'authentication_failed');
  });

  it("refuses a value's data part moved into another row's ciphertext", () => {
    const mine = parts(cipherA.encrypt('mine', AAD));
    const theirs = parts(cipherA.encrypt('theirs', OTHER_ROW));
    const moved = join({ ...theirs, nonce: mine.nonce, body: mine.body });
    expectRefused(() => cipherA.decrypt(moved, OTHER_ROW), 'authentication_failed');
  });

  it('refuses a wrapped data key swapped between ciphertexts under different data keys', () => {
    const oneKeyEach = createFieldCipher(createKeyring([keyA]), { dataKeyMaxUses: 1 });
    const mine = parts(oneKeyEach.encrypt('mine', AAD));
    const other = parts(oneKeyEach.encrypt('other', AAD));
    expect(mine.wrapped.equals(other.wrapped)).toBe(false);
    expectRefused(() => oneKeyEach.decrypt(join({ ...other, wrapped: mine.wrapped }), AAD), 'authentication_failed');
    expectRefused(() => oneKeyEach.decrypt(join({ ...mine, wrapped: other.wrapped }), AAD), 'authentication_failed');
    // The same with a fresh instance, where neither data key is cached.
    const cold = createFieldCipher(createKeyring([keyA]));
    expectRefused(() => cold.decrypt(join({ ...other, wrapped: mine.wrapped }), AAD), 'authentication_failed');
  });

  it('refuses a wrapped data key swapped between ciphertexts under different master keys', () => {
    const both = createFieldCipher(createKeyring([keyA, keyB]));
    const underA = parts(both.encrypt('a', AAD));
    const underB = parts(createFieldCipher(createKeyring([keyB, keyA])).encrypt('b', AAD));
    // keyB's wrapped data key under keyA's label does not unwrap; under its own label it opens the wrong data key.
    expectRefused(() => both.decrypt(join({ ...underA, wrapped: underB.wrapped }), AAD), 'authentication_failed');
    expectRefused(() => both.decrypt(join({ ...underA, keyId: 'keyB', wrapped: underB.wrapped }), AAD), 'authentication_failed');
    expectRefused(() => both.rewrap(join({ ...underB, keyId: 'keyA' }), AAD), 'authentication_failed');
  });

  it.each([
    ['wrap nonce', 'wrapped', 0],
    ['wrapped data key', 'wrapped', 20],
    ['wrap tag', 'wrapped', 59],
    ['data nonce', 'nonce', 5],
    ['first data byte', 'body', 0],
    ['middle data byte', 'body', 500],
    ['last data byte', 'body', 1023],
    ['data tag', 'body', 1030],
  ] as const)('refuses a flipped bit in the %s', (_name, part, index) => {
    const ciphertext = parts(cipherA.encrypt(randomBytes(1024), AAD));
    const tampered = join({ ...ciphertext, [part]: flip(ciphertext[part], index) });
    expectRefused(() => cipherA.decrypt(tampered, AAD), 'authentication_failed');
    // Rotation authenticates the whole value: a damaged one is refused then, not carried over.
    const rotating = createFieldCipher(createKeyring([keyB, keyA]));
    expectRefused(() => rotating.rewrap(tampered, AAD), 'authentication_failed');
  });

  // Values of 8, 9 and 10 bytes leave 0, 4 and 2 unused bits in the last base64url character of the data part.
  it.each(['pin 1234', 'pin 12345', 'pin 123456'])('refuses every single-character change of the serialized %j', (value) => {
    const ciphertext = cipherA.encrypt(value, AAD);
    const replacements = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\u00e9', '\u0142', '\u4142', '\n'];
    let attempts = 0;
    for (let i = 0; i < ciphertext.length; i++) {
      for (const replacement of replacements) {
        if (replacement === ciphertext[i]) continue;
        const tampered = ciphertext.slice(0, i) + replacement + ciphertext.slice(i + 1);
        attempts++;
        expectRefused(() => cipherA.decrypt(tampered, AAD));
      }
    }
    expect(attempts).toBeGreaterThan(10_000);
  });

  it('refuses truncated and extended strings', () => {
    const ciphertext = cipherA.encrypt('some value', AAD);
    for (const cut of [1, 2, 3, 4, 22, ciphertext.length - 3]) {
      expectRefused(() => cipherA.decrypt(ciphertext.slice(0, -cut), AAD));
    }
    for (const extra of ['A', 'AA', 'AAAA', '.AAAA']) expectRefused(() => cipherA.decrypt(ciphertext + extra, AAD));
  });

  it('refuses malformed input with a clear message', () => {
    const error = decryptionError(() => cipherA.decrypt('hunter2', AAD));
    expect(error.code).toBe('malformed');
    expect(error.message).toBe("Ciphertext is malformed: expected a 'v1.' envelope");
    expectRefused(() => cipherA.decrypt('', AAD), 'malformed');
    expectRefused(() => cipherA.decrypt('v1.keyA.abc', AAD), 'malformed');
    const notAString: unknown = null;
    expectRefused(() => cipherA.decrypt(notAString as string, AAD), 'malformed');
    const unsupported = decryptionError(() => cipherA.decrypt(cipherA.encrypt('x', AAD).replace(/^v1/, 'v2'), AAD));
    expect(unsupported.code).toBe('unsupported_version');
    expect(unsupported.message).toMatch(/format v2 is not supported/);
  });

  it('refuses a ciphertext under an unknown key, naming the key id', () => {
    const ciphertext = createFieldCipher(createKeyring([keyB])).encrypt('x', AAD);
    const error = decryptionError(() => cipherA.decrypt(ciphertext, AAD));
    expect(error.code).toBe('unknown_key');
    expect(error.keyId).toBe('keyB');
    expect(error.message).toBe("Ciphertext is under key 'keyB', which is not in ENCRYPTION_KEYS");
  });

  it('refuses a header relabelled with another configured key id', () => {
    const both = createFieldCipher(createKeyring([keyA, keyB]));
    const ciphertext = both.encrypt('x', AAD);
    expectRefused(() => both.decrypt(ciphertext.replace('.keyA.', '.keyB.'), AAD), 'authentication_failed');
  });

  it('never puts plaintext or key material in error messages', () => {
    const ciphertext = cipherA.encrypt('TOPSECRETVALUE', AAD);
    const messages = [
      decryptionError(() => cipherA.decrypt(ciphertext, OTHER_ROW)).message,
      decryptionError(() => cipherA.decrypt(join({ ...parts(ciphertext), body: flip(parts(ciphertext).body, 0) }), AAD)).message,
    ];
    for (const message of messages) {
      expect(message).not.toContain('TOPSECRET');
      expect(message).not.toContain(keyA.key.toString('base64').slice(0, 10));
      expect(message).not.toContain(keyA.key.toString('hex').slice(0, 10));
    }
  });
});

describe('key rotation', () => {
  it('rewraps only the data key, after which the old key can be removed', () => {
    const plaintext = 'provider api key';
    const original = cipherA.encrypt(plaintext, AAD);

    const during = createFieldCipher(createKeyring([keyB, keyA]));
    expect(during.activeKeyId).toBe('keyB');
    expect(during.needsRewrap(original)).toBe(true);
    expect(during.decryptString(original, AAD)).toBe(plaintext);

    const rewrapped = during.rewrap(original, AAD);
    expect(during.keyIdOf(rewrapped)).toBe('keyB');
    expect(during.needsRewrap(rewrapped)).toBe(false);
    // The data part (nonce and ciphertext) is carried over byte for byte; only the header and wrapped key change.
    const dataPart = (c: string) => c.split('.').slice(3).join('.');
    expect(dataPart(rewrapped)).toBe(dataPart(original));
    expect(rewrapped.split('.')[2]).not.toBe(original.split('.')[2]);

    const after = createFieldCipher(createKeyring([keyB]));
    expect(after.decryptString(rewrapped, AAD)).toBe(plaintext);
    expectRefused(() => after.decrypt(original, AAD), 'unknown_key');
  });

  it('keeps the row binding through a rewrap', () => {
    const during = createFieldCipher(createKeyring([keyB, keyA]));
    const original = cipherA.encrypt('x', AAD);
    expectRefused(() => during.rewrap(original, OTHER_ROW), 'authentication_failed');
    const rewrapped = during.rewrap(original, AAD);
    expectRefused(() => during.decrypt(rewrapped, OTHER_ROW), 'authentication_failed');
  });

  it('leaves a ciphertext already under the active key unchanged, after authenticating it', () => {
    const ciphertext = cipherA.encrypt('x', AAD);
    expect(cipherA.rewrap(ciphertext, AAD)).toBe(ciphertext);
    expect(cipherA.needsRewrap(ciphertext)).toBe(false);
    expectRefused(() => cipherA.rewrap(ciphertext, OTHER_ROW), 'authentication_failed');
  });

  it('reports an unknown key when rewrapping without the old key', () => {
    const ciphertext = cipherA.encrypt('x', AAD);
    expectRefused(() => createFieldCipher(createKeyring([keyB])).rewrap(ciphertext, AAD), 'unknown_key');
  });

  it('rewraps a data key shared by many values once, after which the old key can be removed', () => {
    const aads = Array.from({ length: 50 }, (_, i) => `secrets:${i}:value`);
    const originals = aads.map((aad, i) => cipherA.encrypt(`value-${i}`, aad));
    expect(new Set(originals.map((c) => c.split('.')[2])).size).toBe(1);

    const during = createFieldCipher(createKeyring([keyB, keyA]));
    const rewrapped = originals.map((c, i) => during.rewrap(c, aads[i]!));
    // Every wrap draws a fresh nonce, so one wrapped form across all values means the data key was wrapped once.
    expect(new Set(rewrapped.map((c) => c.split('.')[2])).size).toBe(1);
    expect(rewrapped[0]!.split('.')[2]).not.toBe(originals[0]!.split('.')[2]);
    rewrapped.forEach((c, i) => expect(c.split('.').slice(3)).toEqual(originals[i]!.split('.').slice(3)));

    const after = createFieldCipher(createKeyring([keyB]));
    expect(rewrapped.map((c, i) => after.decryptString(c, aads[i]!))).toEqual(aads.map((_, i) => `value-${i}`));
    expectRefused(() => after.decrypt(originals[0]!, aads[0]!), 'unknown_key');
    expectRefused(() => after.decrypt(rewrapped[0]!, aads[1]!), 'authentication_failed');
  });

  it('rewraps values under different data keys each to their own', () => {
    const writer = createFieldCipher(createKeyring([keyA]), { dataKeyMaxUses: 1 });
    const originals = [writer.encrypt('one', AAD), writer.encrypt('two', AAD)];
    const during = createFieldCipher(createKeyring([keyB, keyA]));
    const rewrapped = originals.map((c) => during.rewrap(c, AAD));
    expect(rewrapped[0]!.split('.')[2]).not.toBe(rewrapped[1]!.split('.')[2]);
    const after = createFieldCipher(createKeyring([keyB]));
    expect(rewrapped.map((c) => after.decryptString(c, AAD))).toEqual(['one', 'two']);
  });
});

/** A keyring that counts master key look-ups: decryption looks one up exactly when its data key is not cached. */
function countingKeyring(entries: { id: string; key: Buffer }[]): { keyring: Keyring; lookups: () => number } {
  const inner = createKeyring(entries);
  let count = 0;
  const keyring: Keyring = {
    active: inner.active,
    ids: inner.ids,
    get(id) {
      count += 1;
      return inner.get(id);
    },
  };
  return { keyring, lookups: () => count };
}

describe('data key caching', () => {
  it('encrypts many values, in different rows, under one data key that each value still binds to its own row', () => {
    const cipher = createFieldCipher(createKeyring([keyA]));
    const aads = Array.from({ length: 20 }, (_, i) => `chat_messages:${i}:content`);
    const ciphertexts = aads.map((aad, i) => cipher.encrypt(`message ${i}`, aad));
    expect(new Set(ciphertexts.map((c) => c.split('.')[2])).size).toBe(1);
    // A fresh instance has nothing cached: the shared wrapped form is genuine, and decrypts every value.
    const cold = createFieldCipher(createKeyring([keyA]));
    expect(ciphertexts.map((c, i) => cold.decryptString(c, aads[i]!))).toEqual(aads.map((_, i) => `message ${i}`));
    for (const reader of [cipher, cold]) {
      expectRefused(() => reader.decrypt(ciphertexts[0]!, aads[1]!), 'authentication_failed');
      const swapped = join({ ...parts(ciphertexts[1]!), nonce: parts(ciphertexts[0]!).nonce, body: parts(ciphertexts[0]!).body });
      expectRefused(() => reader.decrypt(swapped, aads[1]!), 'authentication_failed');
    }
  });

  it('draws a fresh data key after the use limit', () => {
    const cipher = createFieldCipher(createKeyring([keyA]), { dataKeyMaxUses: 3 });
    const ciphertexts = Array.from({ length: 7 }, (_, i) => cipher.encrypt(`v${i}`, AAD));
    const wrapped = ciphertexts.map((c) => c.split('.')[2]);
    expect(new Set(wrapped.slice(0, 3)).size).toBe(1);
    expect(new Set(wrapped.slice(3, 6)).size).toBe(1);
    expect(new Set(wrapped).size).toBe(3);
    const cold = createFieldCipher(createKeyring([keyA]));
    expect(ciphertexts.map((c) => cold.decryptString(c, AAD))).toEqual(ciphertexts.map((_, i) => `v${i}`));
  });

  it('draws a fresh data key once the current one reaches its maximum age', () => {
    let clock = 1_000_000;
    const cipher = createFieldCipher(createKeyring([keyA]), { dataKeyMaxAgeMs: 60_000, now: () => clock });
    const first = cipher.encrypt('a', AAD).split('.')[2];
    clock += 59_999;
    expect(cipher.encrypt('b', AAD).split('.')[2]).toBe(first);
    clock += 1;
    const renewed = cipher.encrypt('c', AAD);
    expect(renewed.split('.')[2]).not.toBe(first);
    expect(cipher.decryptString(renewed, AAD)).toBe('c');
  });

  it('writes under a new data key per master key', () => {
    const before = parts(cipherA.encrypt('x', AAD));
    const after = parts(createFieldCipher(createKeyring([keyB, keyA])).encrypt('x', AAD));
    expect(after.keyId).toBe('keyB');
    expect(after.wrapped.equals(before.wrapped)).toBe(false);
  });

  it('unwraps a data key once and keeps the least recently used ones up to the cache size', () => {
    const writer = createFieldCipher(createKeyring([keyA]), { dataKeyMaxUses: 1 });
    const [a, b, c] = ['a', 'b', 'c'].map((value) => writer.encrypt(value, AAD)) as [string, string, string];
    const { keyring, lookups } = countingKeyring([keyA]);
    const reader = createFieldCipher(keyring, { dataKeyCacheSize: 2 });
    const read = (ciphertext: string) => reader.decryptString(ciphertext, AAD);

    expect([read(a), read(b)]).toEqual(['a', 'b']);
    expect(lookups()).toBe(2);
    expect([read(a), read(b), read(a)]).toEqual(['a', 'b', 'a']);
    expect(lookups()).toBe(2);
    // Caching c drops b, the least recently used (not a, the first cached).
    expect(read(c)).toBe('c');
    expect(lookups()).toBe(3);
    expect(read(a)).toBe('a');
    expect(lookups()).toBe(3);
    expect(read(b)).toBe('b');
    expect(lookups()).toBe(4);
    // A cached data key never opens a value for another row.
    expectRefused(() => reader.decrypt(b, OTHER_ROW), 'authentication_failed');
  });

  it('caches the data keys it writes with, so its own values decrypt without unwrapping', () => {
    const { keyring, lookups } = countingKeyring([keyA]);
    const cipher = createFieldCipher(keyring);
    const ciphertexts = Array.from({ length: 10 }, (_, i) => cipher.encrypt(`v${i}`, `${AAD}:${i}`));
    expect(ciphertexts.map((c, i) => cipher.decryptString(c, `${AAD}:${i}`))).toEqual(ciphertexts.map((_, i) => `v${i}`));
    expect(lookups()).toBe(0);
  });

  it('rejects limits that are not positive integers, or that exceed what GCM allows with random nonces', () => {
    const keyring = createKeyring([keyA]);
    expect(() => createFieldCipher(keyring, { dataKeyMaxUses: 0 })).toThrow(RangeError);
    expect(() => createFieldCipher(keyring, { dataKeyMaxUses: 2 ** 32 + 1 })).toThrow(/dataKeyMaxUses/);
    expect(() => createFieldCipher(keyring, { dataKeyMaxUses: 1.5 })).toThrow(RangeError);
    expect(() => createFieldCipher(keyring, { dataKeyMaxAgeMs: 0 })).toThrow(/dataKeyMaxAgeMs/);
    expect(() => createFieldCipher(keyring, { dataKeyMaxAgeMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => createFieldCipher(keyring, { dataKeyCacheSize: 0 })).toThrow(/dataKeyCacheSize/);
  });
});


import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DecryptionError, createFieldCipher, isFieldCiphertext, type DecryptionErrorCode } from './envelope.js';
import { createKeyring } from './keyring.js';

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

  it('uses a fresh data key and nonce for every value', () => {
    const first = parts(cipherA.encrypt('same', AAD));
    const second = parts(cipherA.encrypt('same', AAD));
    expect(first.wrapped.equals(second.wrapped)).toBe(false);
    expect(first.nonce.equals(second.nonce)).toBe(false);
    expect(first.body.equals(second.body)).toBe(false);
  });

  it('keeps working across many values (the random pool refills in between)', () => {
    const values = Array.from({ length: 300 }, (_, i) => `value-${i}`);
    const ciphertexts = values.map((value, i) => {
      // Interleaved rewraps draw 12 bytes, so values start at varying offsets of the pool.
      if (i % 7 === 0) cipherA.rewrap(cipherA.encrypt('x', AAD), AAD);
      return cipherA.encrypt(value, `${AAD}:${i}`);
    });
    expect(ciphertexts.map((c, i) => cipherA.decryptString(c, `${AAD}:${i}`))).toEqual(values);
    expect(new Set(ciphertexts.map((c) => c.split('.')[2])).size).toBe(values.length);
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

  it("refuses a wrapped data key moved into another row's ciphertext", () => {
    const mine = parts(cipherA.encrypt('mine', AAD));
    const theirs = parts(cipherA.encrypt('theirs', OTHER_ROW));
    const spliced = join({ ...theirs, wrapped: mine.wrapped });
    expectRefused(() => cipherA.decrypt(spliced, OTHER_ROW), 'authentication_failed');
    expectRefused(() => cipherA.decrypt(spliced, AAD), 'authentication_failed');
    // The data part of one value under another value's key, same row: still refused.
    const other = parts(cipherA.encrypt('other', AAD));
    expectRefused(() => cipherA.decrypt(join({ ...other, body: mine.body, nonce: mine.nonce }), AAD), 'authentication_failed');
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
    // Rotation authenticates the wrapped key only; a damaged data part is carried over and still refused afterwards.
    const rotating = createFieldCipher(createKeyring([keyB, keyA]));
    if (part === 'wrapped') expectRefused(() => rotating.rewrap(tampered, AAD), 'authentication_failed');
    else expectRefused(() => rotating.decrypt(rotating.rewrap(tampered, AAD), AAD), 'authentication_failed');
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
});

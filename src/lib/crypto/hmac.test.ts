import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createValueFingerprinter, deriveKey, sha256Hex, timingSafeEqualStrings } from './hmac.js';

/** RFC 5869 written out with HMAC, to pin down "HKDF-SHA256 with an empty salt" independently of hkdfSync. */
function referenceHkdf(ikm: Buffer, info: string, length: number): Buffer {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(ikm).digest();
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    previous = createHmac('sha256', prk).update(Buffer.concat([previous, Buffer.from(info), Buffer.from([i])])).digest();
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

describe('deriveKey', () => {
  const master = randomBytes(32);

  it('is HKDF-SHA256 with an empty salt, deterministic and separated by purpose', () => {
    const key = deriveKey(master, 'cdsa/audit/fingerprint/v1');
    expect(key).toHaveLength(32);
    expect(key.equals(referenceHkdf(master, 'cdsa/audit/fingerprint/v1', 32))).toBe(true);
    expect(deriveKey(createSecretKey(master), 'cdsa/audit/fingerprint/v1').equals(key)).toBe(true);
    expect(deriveKey(master, 'cdsa/other/v1').equals(key)).toBe(false);
    expect(deriveKey(master, 'cdsa/other/v1', 64)).toHaveLength(64);
    expect(() => deriveKey(master, '')).toThrow(/non-empty info/);
  });
});

describe('createValueFingerprinter', () => {
  const key = randomBytes(32);
  const fingerprinter = createValueFingerprinter(key);

  it('gives a prefixed keyed HMAC-SHA256 that correlates equal values', () => {
    const value = 'sk-live-0123456789';
    const fingerprint = fingerprinter.fingerprint(value);
    expect(fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(fingerprint).toBe(`hmac-sha256:${createHmac('sha256', key).update(value).digest('hex')}`);
    expect(fingerprinter.fingerprint(value)).toBe(fingerprint);
    expect(fingerprinter.fingerprint(Buffer.from(value))).toBe(fingerprint);
    expect(fingerprinter.fingerprint(`${value}x`)).not.toBe(fingerprint);
  });

  it('differs from a plain hash and between keys, so values cannot be looked up without the key', () => {
    const value = '1234';
    expect(fingerprinter.fingerprint(value)).not.toContain(sha256Hex(value));
    expect(createValueFingerprinter(randomBytes(32)).fingerprint(value)).not.toBe(fingerprinter.fingerprint(value));
  });

  it('refuses short keys', () => {
    expect(() => createValueFingerprinter(randomBytes(16))).toThrow(/at least 32 bytes/);
  });
});

describe('timingSafeEqualStrings', () => {
  it('compares contents, including strings of different lengths, without throwing', () => {
    expect(timingSafeEqualStrings('token-abc', 'token-abc')).toBe(true);
    expect(timingSafeEqualStrings('token-abc', 'token-abd')).toBe(false);
    expect(timingSafeEqualStrings('token-abc', 'token-abcd')).toBe(false);
    expect(timingSafeEqualStrings('', '')).toBe(true);
    expect(timingSafeEqualStrings('é', 'e\u0301')).toBe(false);
  });
});

describe('sha256Hex', () => {
  it('matches the FIPS 180-2 "abc" vector', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(Buffer.from('abc'))).toBe(sha256Hex('abc'));
  });
});

import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../lib/canonical-json.js';
import { REDACTED, sanitizeDetails } from './audit.sanitize.js';

describe('audit details sanitizer', () => {
  it('redacts secrets by key at any depth, keeping the key', () => {
    expect(
      sanitizeDetails({
        username: 'ana',
        password: 'hunter2',
        nested: { api_key: 'k', Authorization: 'Bearer abc', list: [{ client_secret: 's' }] },
        value: 'the secret value',
        token_count: 12,
        secret_name: 'db-password',
      }),
    ).toEqual({
      username: 'ana',
      password: REDACTED,
      nested: { api_key: REDACTED, Authorization: REDACTED, list: [{ client_secret: REDACTED }] },
      value: REDACTED,
      token_count: 12,
      secret_name: 'db-password',
    });
  });

  it('redacts credentials recognised by their shape under innocent keys', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    expect(sanitizeDetails({ note: jwt, header: 'Bearer abcdefghijklmnopqrstuvwxyz', ok: 'bearer of news' })).toEqual({
      note: REDACTED,
      header: REDACTED,
      ok: 'bearer of news',
    });
  });

  it('returns only what jsonb stores and canonical JSON hashes unchanged', () => {
    const cleaned = sanitizeDetails({
      nul: 'a\u0000b',
      lone: 'x\uD800y',
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      big: 10n,
      when: new Date('2026-11-26T09:00:00.000Z'),
      gone: undefined,
      fn: () => 1,
      set: new Set([1, 2]),
      map: new Map([['k', 'v']]),
      bytes: Buffer.from('abc'),
      array: [undefined, 1],
      'key\u0000': 1,
    });
    expect(cleaned).toEqual({
      nul: 'ab',
      lone: 'x\uFFFDy',
      nan: null,
      inf: null,
      big: '10',
      when: '2026-11-26T09:00:00.000Z',
      set: [1, 2],
      map: { k: 'v' },
      bytes: '[3 bytes]',
      array: [null, 1],
      key: 1,
    });
    expect(() => canonicalJson(cleaned)).not.toThrow();
    expect(JSON.parse(JSON.stringify(cleaned))).toEqual(cleaned);
  });

  it('bounds size and depth', () => {
    const long = sanitizeDetails({ text: 'x'.repeat(5_000), prompt: 'p'.repeat(5_000) });
    expect((long.text as string).length).toBe(2_001);
    expect((long.prompt as string).length).toBe(5_000);
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 20; i += 1) deep = { inner: deep };
    expect(JSON.stringify(sanitizeDetails(deep))).toContain(REDACTED);
    expect((sanitizeDetails({ items: Array.from({ length: 500 }, (_, i) => i) }).items as number[]).length).toBe(200);
  });
});

import { describe, expect, it } from 'vitest';
import { createSecretScrubber, scrubSecret, SCRUBBED } from './secret-scrub.js';

const SECRET = 'vault-canary-7f3a9c21e5';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const b64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
const hex = (text: string) => Buffer.from(text, 'utf8').toString('hex');

describe('secret scrubbing', () => {
  it('removes the secret in its common encodings, wherever it sits in the encoded text', () => {
    // Base64 of a header value puts the secret at any offset modulo three: every alignment must be caught.
    for (const prefix of ['Bearer ', 'Token ', 'x', '']) {
      const header = `${prefix}${SECRET}`;
      for (const encoded of [b64(header), b64url(header), hex(header), hex(header).toUpperCase(), encodeURIComponent(`${header} & more`)]) {
        const scrubbed = scrubSecret(`echo: ${encoded} end`, SECRET);
        expect(scrubbed, encoded).toContain(SCRUBBED);
        expect(scrubbed).not.toContain(encoded);
      }
    }
  });

  it('removes raw, JSON-escaped, URL-encoded and form-encoded forms of a secret with special characters', () => {
    const secret = 'p@ss/w"rd wörd+1';
    const scrub = createSecretScrubber([secret]);
    expect(scrub.text(`raw ${secret}`)).toBe(`raw ${SCRUBBED}`);
    expect(scrub.text(JSON.stringify({ h: secret }))).toBe(`{"h":"${SCRUBBED}"}`);
    expect(scrub.text(`q=${encodeURIComponent(secret)}`)).toBe(`q=${SCRUBBED}`);
    expect(scrub.text(`q=${encodeURIComponent(secret).replace(/%20/g, '+')}`)).toBe(`q=${SCRUBBED}`);
    expect(scrub.text(`q=${encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`)).toBe(`q=${SCRUBBED}`);
    expect(scrub.text(`b=${b64(secret)}`)).toBe(`b=${SCRUBBED}`);
    // Base64 with a solidus, in JSON that escapes it.
    const slashy = 'tok???????';
    expect(b64(slashy)).toContain('/');
    expect(scrubSecret(`{"b":"${b64(`Bearer ${slashy}`).replace(/\//g, '\\/')}"}`, slashy)).toMatch(/^\{"b":".{0,12}\[REDACTED\].{0,4}"\}$/);
    expect(scrub.text(`{"h":"${JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/')}"}`)).toBe(`{"h":"${SCRUBBED}"}`);
  });

  it('walks every string of a result, keys included, and leaves other values alone', () => {
    const scrub = createSecretScrubber([SECRET, undefined]);
    expect(scrub.deep({ headers: { authorization: `Bearer ${SECRET}`, [SECRET]: 1 }, n: 2, ok: true, list: [b64(SECRET)] })).toEqual({
      headers: { authorization: `Bearer ${SCRUBBED}`, [SCRUBBED]: 1 },
      n: 2,
      ok: true,
      list: [SCRUBBED],
    });
    expect(scrub.active).toBe(true);
    expect(createSecretScrubber([]).active).toBe(false);
  });

  it('leaves text alone for secrets too short to guard this way', () => {
    expect(scrubSecret('short ab', 'ab')).toBe('short ab');
    expect(scrubSecret('nothing', undefined)).toBe('nothing');
  });
});

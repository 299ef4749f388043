import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAuditFingerprinter, promptDigest } from './audit.privacy.js';

describe('audit privacy helpers', () => {
  it('keeps only length and SHA-256 of a prompt unless prompts are logged', () => {
    const prompt = 'Summarise the salary table for Jane Doe';
    expect(promptDigest(prompt, false)).toEqual({ prompt_length: prompt.length, prompt_sha256: createHash('sha256').update(prompt).digest('hex') });
    expect(JSON.stringify(promptDigest(prompt, false))).not.toContain('Jane');
    expect(promptDigest(prompt, true)).toEqual({ prompt });
  });

  it('fingerprints values with a key derived for the audit trail', () => {
    const master = randomBytes(48);
    const one = createAuditFingerprinter(master);
    const again = createAuditFingerprinter(Buffer.from(master));
    const other = createAuditFingerprinter(randomBytes(48));
    const value = 'sk-live-1234';
    expect(one.fingerprint(value)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(one.fingerprint(value)).toBe(again.fingerprint(value));
    expect(one.fingerprint(value)).not.toBe(other.fingerprint(value));
    expect(one.fingerprint(value)).not.toContain(createHash('sha256').update(value).digest('hex'));
  });
});

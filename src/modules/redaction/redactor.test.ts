import { describe, expect, it } from 'vitest';
import { createStreamingRestorer, PlaceholderVault, redactText } from './redactor.js';

const CARD = '4111 1111 1111 1111';

describe('redactText', () => {
  it('replaces each entity with a numbered placeholder and reports offsets into the input', () => {
    const text = `Mail ana@corp.example or bo@corp.example, card ${CARD}, SSN 123-45-6789.`;
    const r = redactText(text);
    expect(r.redacted_text).toBe('Mail [EMAIL_1] or [EMAIL_2], card [CREDIT_CARD_1], SSN [SSN_1].');
    expect(r.entities).toEqual([
      { type: 'EMAIL', start: 5, end: 21 },
      { type: 'EMAIL', start: 25, end: 40 },
      { type: 'CREDIT_CARD', start: 47, end: 66 },
      { type: 'SSN', start: 72, end: 83 },
    ]);
    expect(r.entities.map((e) => text.slice(e.start, e.end))).toEqual(['ana@corp.example', 'bo@corp.example', CARD, '123-45-6789']);
    for (const e of r.entities) expect(Object.keys(e)).toEqual(['type', 'start', 'end']);
  });

  it('gives the same value the same placeholder, whatever its spelling', () => {
    const r = redactText(`ana@corp.example, ANA@corp.example, ${CARD}, 4111111111111111, 4111-1111-1111-1111, bo@corp.example`);
    expect(r.redacted_text).toBe('[EMAIL_1], [EMAIL_1], [CREDIT_CARD_1], [CREDIT_CARD_1], [CREDIT_CARD_1], [EMAIL_2]');
  });

  it('numbers placeholders afresh on every call', () => {
    expect(redactText('x@y.example').redacted_text).toBe('[EMAIL_1]');
    expect(redactText('z@y.example').redacted_text).toBe('[EMAIL_1]');
  });

  it('returns text without personal data unchanged', () => {
    expect(redactText('Summarise the Q3 report in 3 bullets.')).toEqual({
      redacted_text: 'Summarise the Q3 report in 3 bullets.',
      entities: [],
    });
  });
});

describe('PlaceholderVault', () => {
  it('keeps placeholders stable across calls and continues the numbering', () => {
    const vault = new PlaceholderVault();
    const first = vault.redact('I am ana@corp.example, call +1 415 555 0132.');
    expect(first.text).toBe('I am [EMAIL_1], call [PHONE_1].');
    expect(first.counts).toEqual({ EMAIL: 1, PHONE: 1 });
    const second = vault.redact('Copy bo@corp.example and ana@corp.example twice: ana@corp.example');
    expect(second.text).toBe('Copy [EMAIL_2] and [EMAIL_1] twice: [EMAIL_1]');
    expect(second.counts).toEqual({ EMAIL: 3 });
    expect(vault.size).toBe(3);
  });

  it('restores known placeholders and leaves unknown ones alone', () => {
    const vault = new PlaceholderVault();
    const { text } = vault.redact(`Card ${CARD} for ana@corp.example`);
    expect(vault.restore(text)).toBe(`Card ${CARD} for ana@corp.example`);
    expect(vault.restore('[EMAIL_1] paid with [CREDIT_CARD_1]; [EMAIL_9] and [email_1] stay')).toBe(
      `ana@corp.example paid with ${CARD}; [EMAIL_9] and [email_1] stay`,
    );
  });

  it('restores placeholders inside tool-call arguments', () => {
    const vault = new PlaceholderVault();
    vault.redact('ana@corp.example, DE89 3704 0044 0532 0130 00');
    const args = { to: ['[EMAIL_1]'], body: { iban: 'IBAN: [IBAN_1]', amount: 12 }, dry: false };
    expect(vault.restoreDeep(args)).toEqual({
      to: ['ana@corp.example'],
      body: { iban: 'IBAN: DE89 3704 0044 0532 0130 00', amount: 12 },
      dry: false,
    });
    expect(args.to[0]).toBe('[EMAIL_1]');
  });

  it('survives a JSON round trip with the same mapping and numbering', () => {
    const vault = new PlaceholderVault();
    vault.redact('ana@corp.example bo@corp.example 123-45-6789');
    const copy = PlaceholderVault.fromJSON(JSON.parse(JSON.stringify(vault)));
    expect(copy.restore('[EMAIL_2] [SSN_1]')).toBe('bo@corp.example 123-45-6789');
    expect(copy.redact('bo@corp.example cy@corp.example').text).toBe('[EMAIL_2] [EMAIL_3]');
    expect(copy.toJSON().entries.map((e) => e.placeholder)).toEqual(['[EMAIL_1]', '[EMAIL_2]', '[SSN_1]', '[EMAIL_3]']);
  });

  it('rejects malformed snapshots', () => {
    expect(() => PlaceholderVault.fromJSON(null)).toThrow(TypeError);
    expect(() => PlaceholderVault.fromJSON({ version: 2, entries: [] })).toThrow(TypeError);
    expect(() => PlaceholderVault.fromJSON({ version: 1 })).toThrow(TypeError);
    expect(() => PlaceholderVault.fromJSON({ version: 1, entries: [{ placeholder: '[EMAIL_1]', type: 'NAME', value: 'x' }] })).toThrow(
      TypeError,
    );
    expect(() =>
      PlaceholderVault.fromJSON({ version: 1, entries: [{ placeholder: '[PHONE_1]', type: 'EMAIL', value: 'a@b.example' }] }),
    ).toThrow(TypeError);
    const dup = { placeholder: '[EMAIL_1]', type: 'EMAIL', value: 'a@b.example' };
    expect(() => PlaceholderVault.fromJSON({ version: 1, entries: [dup, dup] })).toThrow(TypeError);
  });
});

describe('createStreamingRestorer', () => {
  function sessionVault(): { vault: PlaceholderVault; redacted: string; original: string } {
    const vault = new PlaceholderVault();
    const original = `Dear ana@corp.example, your card ${CARD} and DOB: 1985-03-14 are on file; call +1 415 555 0132. [see notes]`;
    const redacted = vault.redact(original).text;
    expect(redacted).toBe(
      'Dear [EMAIL_1], your card [CREDIT_CARD_1] and DOB: [DATE_OF_BIRTH_1] are on file; call [PHONE_1]. [see notes]',
    );
    return { vault, redacted, original };
  }

  function stream(vault: PlaceholderVault, deltas: string[]): string {
    const r = createStreamingRestorer(vault);
    return deltas.map((d) => r.push(d)).join('') + r.flush();
  }

  it('restores a stream split into two deltas at every position', () => {
    const { vault, redacted, original } = sessionVault();
    for (let i = 0; i <= redacted.length; i++) {
      expect(stream(vault, [redacted.slice(0, i), redacted.slice(i)]), `split at ${i}`).toBe(original);
    }
  });

  it('restores a stream delivered one character at a time, and in three-way splits', () => {
    const { vault, redacted, original } = sessionVault();
    expect(stream(vault, [...redacted])).toBe(original);
    const ph = redacted.indexOf('[DATE_OF_BIRTH_1]');
    for (let i = ph; i <= ph + 17; i++) {
      for (let j = i; j <= ph + 17; j++) {
        expect(stream(vault, [redacted.slice(0, i), redacted.slice(i, j), redacted.slice(j)])).toBe(original);
      }
    }
  });

  it('emits everything at once unless the delta ends inside a possible placeholder', () => {
    const { vault } = sessionVault();
    const r = createStreamingRestorer(vault);
    expect(r.push('Hello ')).toBe('Hello ');
    expect(r.push('see [notes] and [Ex')).toBe('see [notes] and [Ex');
    expect(r.push('ample')).toBe('ample');
    expect(r.push(' mail [EM')).toBe(' mail ');
    expect(r.push('AIL_1')).toBe('');
    expect(r.push('] ok')).toBe('ana@corp.example ok');
    expect(r.push(' [PHONE_1')).toBe(' ');
    expect(r.flush()).toBe('[PHONE_1');
  });

  it('waits for more digits so [EMAIL_1 does not become [EMAIL_12]', () => {
    const vault = new PlaceholderVault();
    const many = Array.from({ length: 12 }, (_, i) => `u${i + 1}@corp.example`).join(' ');
    vault.redact(many);
    const r = createStreamingRestorer(vault);
    expect(r.push('to [EMAIL_1')).toBe('to ');
    expect(r.push('2] now')).toBe('u12@corp.example now');
  });
});

import { describe, expect, it } from 'vitest';
import { GENERATED_PATH, HOLDOUT_PATH, loadCorpus, scoreCorpus, scoreOverlap } from '../../../test/fixtures/pii/corpus.js';
import { detectPii, PII_TYPES } from './index.js';

// The hand-written corpus predates people, places and organisations: it labels the checksummed and patterned types.
const PATTERN_TYPES = PII_TYPES.filter((t) => !['PERSON', 'LOCATION', 'ORGANIZATION'].includes(t));

const docs = loadCorpus();
const score = scoreCorpus(docs, detectPii);

describe('labelled PII corpus', () => {
  it('is large enough to measure, with every type and many documents without personal data', () => {
    const labelled = docs.flatMap((d) => d.entities);
    expect(labelled.length).toBeGreaterThanOrEqual(300);
    for (const t of PATTERN_TYPES) expect(labelled.filter((e) => e.type === t).length, t).toBeGreaterThanOrEqual(30);
    for (const t of ['CREDIT_CARD', 'IBAN', 'SSN'] as const) {
      expect(labelled.filter((e) => e.type === t).length, t).toBeGreaterThanOrEqual(60);
    }
    expect(docs.filter((d) => d.entities.length === 0).length).toBeGreaterThanOrEqual(40);
    for (const d of docs) for (const e of d.entities) expect(d.text.slice(e.start, e.end)).toBe(e.value);
  });

  it.each(['CREDIT_CARD', 'IBAN', 'SSN'] as const)('%s: recall >= 0.99 and precision >= 0.97', (type) => {
    const s = score.byType[type];
    expect(s.tp + s.fn).toBeGreaterThan(0);
    expect(s.recall, JSON.stringify(score.misses.filter((m) => m.type === type))).toBeGreaterThanOrEqual(0.99);
    expect(s.precision, JSON.stringify(score.falsePositives.filter((m) => m.type === type))).toBeGreaterThanOrEqual(0.97);
  });

  it.each(['EMAIL', 'PHONE', 'IP_ADDRESS', 'DATE_OF_BIRTH', 'SECRET'] as const)(
    '%s: recall and precision stay >= 0.9',
    (type) => {
      const s = score.byType[type];
      expect(s.recall, JSON.stringify(score.misses.filter((m) => m.type === type))).toBeGreaterThanOrEqual(0.9);
      expect(s.precision, JSON.stringify(score.falsePositives.filter((m) => m.type === type))).toBeGreaterThanOrEqual(0.9);
    },
  );

  it('scores exact spans: a shifted or mistyped detection is both a miss and a false positive', () => {
    const doc = { id: 't', text: 'card 4111 1111 1111 1111', entities: [{ type: 'CREDIT_CARD' as const, start: 5, end: 24, value: '4111 1111 1111 1111' }] };
    expect(scoreCorpus([doc], detectPii).byType.CREDIT_CARD).toMatchObject({ tp: 1, fp: 0, fn: 0 });
    const shifted = scoreCorpus([doc], () => [{ type: 'CREDIT_CARD', start: 6, end: 24 }]).byType.CREDIT_CARD;
    expect(shifted).toMatchObject({ tp: 0, fp: 1, fn: 1, precision: 0, recall: 0 });
    const mistyped = scoreCorpus([doc], () => [{ type: 'PHONE', start: 5, end: 24 }]).byType;
    expect(mistyped.CREDIT_CARD.fn).toBe(1);
    expect(mistyped.PHONE.fp).toBe(1);
  });
});

describe('generated corpora (span overlap)', () => {
  const dev = loadCorpus(GENERATED_PATH);
  const holdout = loadCorpus(HOLDOUT_PATH);

  it('has at least 2,000 labelled entities of every type in the development split, and a held-out split', () => {
    const labelled = dev.flatMap((d) => d.entities);
    expect(labelled.length).toBeGreaterThanOrEqual(2000);
    for (const t of PII_TYPES.filter((x) => x !== 'SECRET')) expect(labelled.filter((e) => e.type === t).length, t).toBeGreaterThanOrEqual(30);
    expect(holdout.flatMap((d) => d.entities).length).toBeGreaterThanOrEqual(900);
    for (const d of [...dev, ...holdout]) for (const e of d.entities) expect(d.text.slice(e.start, e.end)).toBe(e.value);
  });

  it.each([
    ['development', dev],
    ['held-out', holdout],
  ] as const)('%s split: overall recall and precision >= 0.85; cards, IBANs, SSNs and e-mails recall >= 0.98', (_name, docs) => {
    const score = scoreOverlap(docs, detectPii);
    expect(score.overall.recall).toBeGreaterThanOrEqual(0.85);
    expect(score.overall.precision).toBeGreaterThanOrEqual(0.85);
    for (const t of ['CREDIT_CARD', 'IBAN', 'SSN', 'EMAIL'] as const) {
      expect(score.byType[t].recall, JSON.stringify(score.misses.filter((m) => m.type === t))).toBeGreaterThanOrEqual(0.98);
    }
  });
});

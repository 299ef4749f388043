import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors.js';
import { parseInstant, parsePeriod } from './audit.query.js';

describe('period parsing', () => {
  it('accepts dates and zoned date-times, a date as upper bound meaning the whole day', () => {
    expect(parseInstant('2026-11-26', '/from', 'from')?.toISOString()).toBe('2026-11-26T00:00:00.000Z');
    expect(parseInstant('2026-11-26', '/to', 'to')?.toISOString()).toBe('2026-11-26T23:59:59.999Z');
    expect(parseInstant('2026-11-26T10:00:00+02:00', '/from', 'from')?.toISOString()).toBe('2026-11-26T08:00:00.000Z');
    expect(parseInstant('2026-11-26T10:00Z', '/from', 'from')?.toISOString()).toBe('2026-11-26T10:00:00.000Z');
    expect(parseInstant(undefined, '/from', 'from')).toBeUndefined();
  });

  it('rejects what is not a real, zoned instant with the field named', () => {
    for (const bad of ['yesterday', '2026-02-31', '2026-13-01', '2026-11-26T25:00:00Z', '2026-11-26T10:00:00', '1764147600', '']) {
      expect(() => parseInstant(bad, '/from', 'from'), bad).toThrow(ValidationError);
    }
    let caught: unknown;
    try {
      parsePeriod({ from: 'nope', to: 'never' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).errors.map((e) => e.pointer)).toEqual(['/from', '/to']);
  });

  it('rejects a period that ends before it starts', () => {
    expect(() => parsePeriod({ from: '2026-11-27', to: '2026-11-26' })).toThrow(/Invalid period/);
    expect(parsePeriod({ from: '2026-11-26', to: '2026-11-26' }).to?.toISOString()).toBe('2026-11-26T23:59:59.999Z');
  });
});

import { describe, expect, it } from 'vitest';
import { createToolSchemaValidator, describeFieldErrors } from './tool-schemas.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['amount', 'to'],
  properties: { amount: { type: 'number', minimum: 0 }, to: { type: 'string', format: 'email' }, 'a/b': { type: 'string' } },
};

describe('tool schema validator', () => {
  const validator = createToolSchemaValidator();
  const source = { id: 'tool-1', version: 1 };

  it('reports JSON pointers under the given prefix, for missing, extra and wrong members', () => {
    const errors = validator.validate(source, 'input', schema, { amount: -1, extra: true, 'a/b': 3 }, '/args');
    expect(errors).toEqual(
      expect.arrayContaining([
        { pointer: '/args/amount', detail: 'must be >= 0' },
        { pointer: '/args/to', detail: 'is required' },
        { pointer: '/args/extra', detail: 'is not an allowed field' },
        { pointer: '/args/a~1b', detail: 'must be string' },
      ]),
    );
    expect(validator.validate(source, 'input', schema, { amount: 5, to: 'a@example.com' })).toEqual([]);
    expect(describeFieldErrors([{ pointer: '/to', detail: 'is required' }])).toBe('/to: is required');
  });

  it('never coerces or fills in arguments: what is approved is what runs', () => {
    const args: Record<string, unknown> = { amount: '5', to: 'a@example.com' };
    expect(validator.validate({ id: 'tool-2', version: 1 }, 'input', { ...schema, properties: { ...schema.properties, note: { type: 'string', default: 'x' } } }, args)).toHaveLength(1);
    expect(args).toEqual({ amount: '5', to: 'a@example.com' });
  });

  it('compiles once per tool version, and tells invalid schemas apart', () => {
    const fresh = createToolSchemaValidator();
    fresh.validate(source, 'input', schema, {});
    fresh.validate(source, 'input', schema, { amount: 1 });
    expect(fresh.size).toBe(1);
    fresh.validate({ id: 'tool-1', version: 2 }, 'input', schema, {});
    expect(fresh.size).toBe(2);
    expect(fresh.check({ type: 'object', properties: { a: { type: 'wrong' } } })).toMatch(/schema/i);
    expect(fresh.check(schema)).toBeNull();
  });

  it('lets two tools use the same $id', () => {
    const withId = { $id: 'https://example.com/args', type: 'object' };
    validator.validate({ id: 'a', version: 1 }, 'input', withId, {});
    expect(() => validator.validate({ id: 'b', version: 1 }, 'input', withId, {})).not.toThrow();
  });

  it('matches approval_when conditions', () => {
    const when = { type: 'object', required: ['amount'], properties: { amount: { exclusiveMinimum: 10000 } } };
    expect(validator.matches(source, 'approval_when', when, { amount: 10001 })).toBe(true);
    expect(validator.matches(source, 'approval_when', when, { amount: 10000 })).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { diffArgs } from '../../console/src/views/args-diff.js';

describe('the approval inbox argument diff', () => {
  it('lists changed, added and removed arguments by path, nested ones included, and nothing for equal calls', () => {
    expect(diffArgs({ amount: 250, to: 'ACME Ltd' }, { to: 'ACME Ltd', amount: 250 })).toEqual([]);
    expect(
      diffArgs(
        { amount: 250, to: { name: 'ACME Ltd', iban: 'DE89' }, tags: ['a'], note: 'x' },
        { amount: 900, to: { name: 'ACME Ltd', iban: 'GB33' }, tags: ['a', 'b'], memo: 'boxes' },
      ),
    ).toEqual([
      { path: 'amount', kind: 'changed', before: 250, after: 900 },
      { path: 'memo', kind: 'added', after: 'boxes' },
      { path: 'note', kind: 'removed', before: 'x' },
      { path: 'tags.1', kind: 'added', after: 'b' },
      { path: 'to.iban', kind: 'changed', before: 'DE89', after: 'GB33' },
    ]);
  });

  it('compares values of different shapes as a whole', () => {
    expect(diffArgs({ to: 'ACME' }, { to: { name: 'ACME' } })).toEqual([{ path: 'to', kind: 'changed', before: 'ACME', after: { name: 'ACME' } }]);
    expect(diffArgs({ n: null }, { n: 0 })).toEqual([{ path: 'n', kind: 'changed', before: null, after: 0 }]);
  });
});

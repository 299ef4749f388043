import { describe, expect, it } from 'vitest';
import { LruMap } from './lru-map.js';

describe('LruMap', () => {
  it('drops the least recently used entry beyond its capacity and says which', () => {
    const map = new LruMap<string, number>(2);
    expect(map.set('a', 1)).toBeUndefined();
    expect(map.set('b', 2)).toBeUndefined();
    expect(map.get('a')).toBe(1);
    expect(map.set('c', 3)).toEqual(['b', 2]);
    expect(map.get('b')).toBeUndefined();
    expect([map.get('a'), map.get('c'), map.size]).toEqual([1, 3, 2]);
  });

  it('replaces a value in place, and forgets deleted keys', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.set('a', 10)).toBeUndefined();
    expect(map.set('c', 3)).toEqual(['b', 2]);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    expect([map.get('a'), map.get('c'), map.size]).toEqual([undefined, 3, 1]);
  });

  it('finds an entry by an equal key and marks it used', () => {
    const stored = 'x'.repeat(8);
    const map = new LruMap<string, number>(2);
    map.set(stored, 1);
    map.set('other', 2);
    const equal = `${'x'.repeat(4)}${'x'.repeat(4)}`;
    expect(map.get(equal)).toBe(1);
    // The touched entry is now the newest: adding one more drops 'other', and the entry still answers.
    expect(map.set('third', 3)).toEqual(['other', 2]);
    expect(map.get(stored)).toBe(1);
  });

  it('refuses a capacity below one', () => {
    expect(() => new LruMap(0)).toThrow(RangeError);
  });
});

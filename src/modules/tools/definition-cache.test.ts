import { describe, expect, it } from 'vitest';
import { createDefinitionCache } from './definition-cache.js';

describe('definition cache', () => {
  it('serves entries within the TTL only', () => {
    let now = 0;
    const cache = createDefinitionCache<string>({ ttlMs: 1_000, now: () => now });
    cache.set('a', 'v1', cache.generation());
    now = 999;
    expect(cache.get('a')).toBe('v1');
    now = 1_001;
    expect(cache.get('a')).toBeUndefined();
  });

  it('drops everything on clear, and ignores a read that started before the clear', () => {
    const cache = createDefinitionCache<string>({ ttlMs: 60_000 });
    cache.set('a', 'old', cache.generation());
    const started = cache.generation();
    cache.clear();
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 'read before the change', started);
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 'new', cache.generation());
    expect(cache.get('a')).toBe('new');
  });
});

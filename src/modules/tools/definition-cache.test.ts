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

  it('loads through the cache: reads once, keeps nothing found, and does not keep a read a clear overtook', async () => {
    const cache = createDefinitionCache<string>({ ttlMs: 60_000 });
    let reads = 0;
    const load = async () => {
      reads += 1;
      return 'v1';
    };
    expect(await cache.getOrLoad('a', load)).toBe('v1');
    expect(await cache.getOrLoad('a', load)).toBe('v1');
    expect(reads).toBe(1);
    expect(await cache.getOrLoad('missing', async () => undefined)).toBeUndefined();
    expect(cache.get('missing')).toBeUndefined();
    const overtaken = cache.getOrLoad('b', async () => {
      cache.clear();
      return 'stale';
    });
    expect(await overtaken).toBe('stale');
    expect(cache.get('b')).toBeUndefined();
  });

  it('reads every time when its lifetime is 0', async () => {
    const cache = createDefinitionCache<string>({ ttlMs: 0 });
    let reads = 0;
    const load = async () => String((reads += 1));
    expect([await cache.getOrLoad('a', load), await cache.getOrLoad('a', load)]).toEqual(['1', '2']);
  });
});

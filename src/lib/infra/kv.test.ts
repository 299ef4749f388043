import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDegradingKeyValueStore, createMemoryKeyValueStore, createRedisKeyValueStore, type KeyValueStore } from './kv.js';
import { createRedis, waitForRedis } from './redis.js';

const redis = process.env.REDIS_URL ? createRedis(process.env.REDIS_URL) : undefined;
beforeAll(async () => {
  if (redis) await waitForRedis(redis, 5_000);
});
afterAll(() => redis?.disconnect());

const stores: [string, KeyValueStore | undefined][] = [
  ['memory', createMemoryKeyValueStore()],
  ['redis', redis ? createRedisKeyValueStore(redis, `cdsa-test-${randomUUID().slice(0, 8)}`) : undefined],
];

describe.each(stores)('%s key-value store', (_name, store) => {
  it.runIf(Boolean(store))('take() is single-use', async () => {
    await store!.set('ticket', 'v', 60);
    expect(await store!.take('ticket')).toBe('v');
    expect(await store!.take('ticket')).toBeNull();
  });

  it.runIf(Boolean(store))('setIfAbsent claims once', async () => {
    expect(await store!.setIfAbsent('claim', 'a', 60)).toBe(true);
    expect(await store!.setIfAbsent('claim', 'b', 60)).toBe(false);
    expect(await store!.get('claim')).toBe('a');
  });

  it.runIf(Boolean(store))('decrement gives one back, never goes below zero and never creates a counter', async () => {
    await store!.increment('refund', 900);
    await store!.increment('refund', 900);
    await store!.decrement('refund');
    expect(await store!.get('refund')).toBe('1');
    expect(await store!.ttl('refund')).toBeGreaterThan(0);
    await store!.decrement('refund');
    await store!.decrement('refund');
    expect(await store!.get('refund')).toBe('0');
    await store!.decrement('absent-counter');
    expect(await store!.get('absent-counter')).toBeNull();
  });

  it.runIf(Boolean(store))('increment counts within a window and reports the time left', async () => {
    const first = await store!.increment('counter', 900);
    const second = await store!.increment('counter', 900);
    expect(first.count).toBe(1);
    expect(second.count).toBe(2);
    expect(second.ttlSeconds).toBeGreaterThan(890);
    expect(second.ttlSeconds).toBeLessThanOrEqual(900);
  });
});

describe('memory store expiry', () => {
  it('forgets a key after its TTL', async () => {
    let now = 1_000_000;
    const store = createMemoryKeyValueStore(() => now);
    await store.set('k', 'v', 10);
    now += 9_000;
    expect(await store.get('k')).toBe('v');
    now += 2_000;
    expect(await store.get('k')).toBeNull();
  });
});

describe('degrading key-value store', () => {
  it('uses the fallback while Redis is unreachable, says so once, and still refuses other errors', async () => {
    const down = createRedis('redis://127.0.0.1:9', { lazyConnect: true, retryStrategy: () => null });
    down.on('error', () => undefined);
    const degraded: unknown[] = [];
    const store = createDegradingKeyValueStore(createRedisKeyValueStore(down, 'cdsa-test-down'), createMemoryKeyValueStore(), {
      onDegraded: (error) => degraded.push(error),
      onRestored: () => undefined,
    });
    try {
      expect(await store.increment('failures', 60)).toMatchObject({ count: 1 });
      expect(await store.increment('failures', 60)).toMatchObject({ count: 2 });
      expect(await store.get('failures')).toBe('2');
      expect(degraded).toHaveLength(1);
      const broken = createDegradingKeyValueStore(
        { ...createMemoryKeyValueStore(), get: async () => Promise.reject(new Error('a bug')) },
        createMemoryKeyValueStore(),
        { onDegraded: () => undefined, onRestored: () => undefined },
      );
      await expect(broken.get('x')).rejects.toThrow('a bug');
    } finally {
      down.disconnect();
    }
  });
});

import type { Redis } from 'ioredis';
import { unavailableDependency } from '../dependency-errors.js';

/**
 * Small shared state with expiry: throttling counters, single-use tickets, revocation marks. In memory for one
 * process; in Redis when several instances must agree.
 */
export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  /** Sets only when absent; true when this call set it (single-use claims). */
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  /** Reads and deletes atomically (single-use tickets). */
  take(key: string): Promise<string | null>;
  del(key: string): Promise<void>;
  /** Increments a counter; the first increment starts its expiry window. Returns the count and seconds left. */
  increment(key: string, windowSeconds: number): Promise<{ count: number; ttlSeconds: number }>;
  /** Takes one back from a counter that exists (never below zero), keeping its expiry. */
  decrement(key: string): Promise<void>;
  ttl(key: string): Promise<number>;
}

interface Entry {
  value: string;
  expiresAt: number;
}

export function createMemoryKeyValueStore(now: () => number = Date.now): KeyValueStore {
  const entries = new Map<string, Entry>();
  let writes = 0;
  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const sweep = () => {
    // Amortised clean-up so expired keys can't accumulate without bound.
    if (++writes % 1000 !== 0) return;
    const t = now();
    for (const [key, entry] of entries) if (entry.expiresAt <= t) entries.delete(key);
  };
  return {
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, ttlSeconds) {
      sweep();
      entries.set(key, { value, expiresAt: now() + ttlSeconds * 1000 });
    },
    async setIfAbsent(key, value, ttlSeconds) {
      if (live(key)) return false;
      sweep();
      entries.set(key, { value, expiresAt: now() + ttlSeconds * 1000 });
      return true;
    },
    async take(key) {
      const entry = live(key);
      entries.delete(key);
      return entry?.value ?? null;
    },
    async del(key) {
      entries.delete(key);
    },
    async increment(key, windowSeconds) {
      sweep();
      const entry = live(key);
      if (!entry) {
        entries.set(key, { value: '1', expiresAt: now() + windowSeconds * 1000 });
        return { count: 1, ttlSeconds: windowSeconds };
      }
      entry.value = String(Number(entry.value) + 1);
      return { count: Number(entry.value), ttlSeconds: Math.max(1, Math.ceil((entry.expiresAt - now()) / 1000)) };
    },
    async decrement(key) {
      const entry = live(key);
      if (entry) entry.value = String(Math.max(0, Number(entry.value) - 1));
    },
    async ttl(key) {
      const entry = live(key);
      return entry ? Math.max(0, Math.ceil((entry.expiresAt - now()) / 1000)) : -2;
    },
  };
}

const DECREMENT_EXISTING = `if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then return redis.call('DECR', KEYS[1]) end return 0`;

export function createRedisKeyValueStore(redis: Redis, prefix: string): KeyValueStore {
  const k = (key: string) => `${prefix}:kv:${key}`;
  return {
    async get(key) {
      return redis.get(k(key));
    },
    async set(key, value, ttlSeconds) {
      await redis.set(k(key), value, 'EX', ttlSeconds);
    },
    async setIfAbsent(key, value, ttlSeconds) {
      return (await redis.set(k(key), value, 'EX', ttlSeconds, 'NX')) === 'OK';
    },
    async take(key) {
      return redis.getdel(k(key));
    },
    async del(key) {
      await redis.del(k(key));
    },
    async increment(key, windowSeconds) {
      const [[, count], , [, ttl]] = (await redis
        .multi()
        .incr(k(key))
        .expire(k(key), windowSeconds, 'NX')
        .ttl(k(key))
        .exec()) as [[null, number], [null, number], [null, number]];
      return { count, ttlSeconds: ttl > 0 ? ttl : windowSeconds };
    },
    async decrement(key) {
      // One script, so the counter is neither recreated without an expiry nor taken below zero by a race.
      await redis.eval(DECREMENT_EXISTING, 1, k(key));
    },
    async ttl(key) {
      return redis.ttl(k(key));
    },
  };
}

/**
 * A store that degrades instead of failing: while `primary` (Redis) is unreachable, every operation goes to `fallback`
 * (this process's memory), and `onDegraded` is told once per outage. For state where a per-instance answer is better
 * than none, such as failed-login counters; never for state that must be shared to be correct.
 */
export function createDegradingKeyValueStore(
  primary: KeyValueStore,
  fallback: KeyValueStore,
  events: { onDegraded(error: unknown): void; onRestored(): void },
): KeyValueStore {
  let degraded = false;
  const attempt = async <T>(operation: (store: KeyValueStore) => Promise<T>): Promise<T> => {
    try {
      const result = await operation(primary);
      if (degraded) {
        degraded = false;
        events.onRestored();
      }
      return result;
    } catch (error) {
      if (unavailableDependency(error) !== 'redis') throw error;
      if (!degraded) {
        degraded = true;
        events.onDegraded(error);
      }
      return operation(fallback);
    }
  };
  return {
    get: (key) => attempt((store) => store.get(key)),
    set: (key, value, ttlSeconds) => attempt((store) => store.set(key, value, ttlSeconds)),
    setIfAbsent: (key, value, ttlSeconds) => attempt((store) => store.setIfAbsent(key, value, ttlSeconds)),
    take: (key) => attempt((store) => store.take(key)),
    del: (key) => attempt((store) => store.del(key)),
    increment: (key, windowSeconds) => attempt((store) => store.increment(key, windowSeconds)),
    decrement: (key) => attempt((store) => store.decrement(key)),
    ttl: (key) => attempt((store) => store.ttl(key)),
  };
}

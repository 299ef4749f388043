import { Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis;

/**
 * Commands fail fast while Redis is down (no offline queue), so requests that don't need Redis keep working and the
 * ones that do get a clear 503; the client reconnects by itself with capped backoff.
 */
export function createRedis(url: string, overrides: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    commandTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
    ...overrides,
  });
}

/**
 * The pub/sub subscriber: commands wait for a reconnect instead of failing, and ioredis does not re-subscribe by
 * itself. Its own re-subscribe after a reconnect leaves a promise nobody handles, so a shutdown that lands before the
 * reply becomes an unhandled rejection ("Connection is closed"); createRedisPubSub re-subscribes with a handler.
 */
export function createRedisSubscriber(url: string): Redis {
  return createRedis(url, { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false });
}

export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis at REDIS_URL is unreachable after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

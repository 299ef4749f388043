import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { AppConfig } from '../config.js';
import { openDatabase, type Database } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { createInProcessJobQueue, createBullJobQueue, type JobQueue } from '../lib/infra/jobs.js';
import { createMemoryKeyValueStore, createRedisKeyValueStore, type KeyValueStore } from '../lib/infra/kv.js';
import { createMemoryPubSub, createRedisPubSub, type PubSub } from '../lib/infra/pubsub.js';
import { createRedis, createRedisSubscriber, waitForRedis } from '../lib/infra/redis.js';
import { createInstanceRegistry, type InstanceRegistry } from '../lib/infra/instances.js';
import { createSseRegistry, type SseRegistry } from '../lib/sse.js';
import { ensureDataDir, type ResolvedSecrets } from '../lib/secrets.js';

export interface Infrastructure {
  database: Database;
  redis: Redis | undefined;
  kv: KeyValueStore;
  pubsub: PubSub;
  jobs: JobQueue;
  sse: SseRegistry;
  vectorSearch: 'available' | 'unavailable';
  shutdown: ShutdownState;
  /** This process's lease among the service's instances (crash recovery). */
  instance: InstanceRegistry;
}

/**
 * Graceful shutdown as the modules see it: `closing` from the moment it begins; `deadline` aborts when the grace
 * period (SHUTDOWN_GRACE_MS) is over, so work still running then (a slow tool call) stops waiting and records that it
 * was interrupted instead of being cut off by the process exit.
 */
export interface ShutdownState {
  readonly closing: boolean;
  readonly deadline: AbortSignal;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig;
    secrets: ResolvedSecrets;
    infra: Infrastructure;
  }
}

export interface InfraPluginOptions {
  config: AppConfig;
  secrets: ResolvedSecrets;
  /** Tests may pass an already-open database. */
  database?: Database;
}

/**
 * Storage and coordination: the database (migrated), and either Redis + BullMQ (several instances act as one) or
 * their in-process equivalents (one laptop, no servers).
 */
export const infraPlugin = fp<InfraPluginOptions>(
  async (app, options) => {
    const { config } = options;
    app.decorate('config', config);
    app.decorate('secrets', options.secrets);

    if (!options.database && !config.databaseUrl) ensureDataDir(config.dataDir);
    const database =
      options.database ??
      (await openDatabase({
        databaseUrl: config.databaseUrl,
        embeddedDir: config.dataDir,
        connectTimeoutSeconds: config.databaseConnectTimeoutSeconds,
        logger: app.log,
      }));
    let vectorSearch: Infrastructure['vectorSearch'];
    try {
      ({ vectorSearch } = await runMigrations(database));
    } catch (error) {
      if (!options.database) await database.close();
      throw error;
    }
    if (vectorSearch === 'unavailable') {
      app.log.warn(
        'pgvector is not installed in this PostgreSQL: vector search is unavailable; document search falls back to keyword search (BM25)',
      );
    }

    let redis: Redis | undefined;
    let kv: KeyValueStore;
    let pubsub: PubSub;
    let jobs: JobQueue;
    const closers: (() => Promise<unknown>)[] = [];
    if (config.redisUrl) {
      const prefix = config.redisPrefix;
      redis = createRedis(config.redisUrl);
      const subscriber = createRedisSubscriber(config.redisUrl);
      const bullConnection = createRedis(config.redisUrl, { enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
      for (const client of [redis, subscriber, bullConnection]) {
        client.on('error', (error: Error) => app.log.warn({ err: error.message }, 'redis connection error'));
      }
      await waitForRedis(redis, config.databaseConnectTimeoutSeconds * 1000 || 5_000);
      kv = createRedisKeyValueStore(redis, prefix);
      pubsub = createRedisPubSub(redis, subscriber, prefix);
      jobs = await createBullJobQueue({ connection: bullConnection, prefix: `${prefix}:bull`, logger: app.log });
      closers.push(
        () => subscriber.quit().catch(() => subscriber.disconnect()),
        () => bullConnection.quit().catch(() => bullConnection.disconnect()),
        () => redis!.quit().catch(() => redis!.disconnect()),
      );
    } else {
      kv = createMemoryKeyValueStore();
      pubsub = createMemoryPubSub();
      jobs = createInProcessJobQueue(app.log);
    }

    const sse = createSseRegistry();
    const deadline = new AbortController();
    let closing = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const shutdown: ShutdownState = {
      get closing() {
        return closing;
      },
      deadline: deadline.signal,
    };
    const instance = createInstanceRegistry({ db: database.db, leaseMs: config.instanceLeaseSeconds * 1000, logger: app.log });
    app.decorate('infra', { database, redis, kv, pubsub, jobs, sse, vectorSearch, shutdown, instance });
    // Leased once every module is registered (their heartbeat tasks with it); released last, before the stores close.
    app.addHook('onReady', async () => {
      await instance.start();
    });

    // Close order: streams first (they hold requests open), then jobs, then the stores they use.
    app.addHook('preClose', async () => {
      closing = true;
      graceTimer = setTimeout(() => deadline.abort(), config.shutdownGraceMs);
      graceTimer.unref();
      sse.closeAll();
    });
    app.addHook('onClose', async () => {
      clearTimeout(graceTimer);
      if (!deadline.signal.aborted) deadline.abort();
      sse.closeRemaining();
      // Jobs first: a call a job is still running keeps this instance's lease until it is recorded.
      await jobs.close();
      await instance.stop();
      await pubsub.close();
      for (const close of closers) await close();
      if (!options.database) await database.close();
    });
  },
  { name: 'infra' },
);

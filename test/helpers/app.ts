import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Writable } from 'node:stream';
import { buildApp, loggerOptions } from '../../src/app.js';
import { loadConfig, type AppConfig } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/db/client.js';
import { generateAuditHmacKeys, generateAuditSigningKeyPem, generateEncryptionKeys, type ResolvedSecrets } from '../../src/lib/secrets.js';
import { PGLITE_TEMPLATE_ENV } from '../global-setup.js';
import { createPostgresDatabase, dropPostgresDatabase } from './postgres.js';

/**
 * Builds the real app for API tests: an in-memory embedded database by default, or — when DATABASE_URL / REDIS_URL
 * are set (the second CI pass) — a fresh PostgreSQL database and a private Redis prefix per test app, so files run
 * in parallel without seeing each other. `share` makes a second instance on the same database and Redis.
 */
export interface TestApp {
  app: FastifyInstance;
  config: AppConfig;
  secrets: ResolvedSecrets;
  /** Set on PostgreSQL runs: the per-test database URL. */
  databaseUrl: string | undefined;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  /**
   * Another instance of the same service: same database, Redis prefix and secrets. On the embedded database it uses
   * the shared app's PGlite: close it before the app it shares.
   */
  share?: TestApp;
  /** Replaces some of the (generated or shared) secrets, e.g. `encryptionKeys` to test a key rotation. */
  secrets?: Partial<ResolvedSecrets>;
  processJobs?: boolean;
  /**
   * Keep the embedded database in this directory, as `npm start` does (DATA_DIR), instead of in memory. Benchmarks
   * use it to measure the configuration people run; tests stay in memory.
   */
  embeddedDir?: string;
  /** Where the app's log goes (JSON lines, at env LOG_LEVEL), for tests that read what was logged. */
  logStream?: Writable;
  /** Runs after the modules are registered and before the app is ready (e.g. to decorate a test double). */
  beforeReady?: (app: FastifyInstance) => void | Promise<void>;
}

export const usingPostgres = Boolean(process.env.DATABASE_URL);
export const usingRedis = Boolean(process.env.REDIS_URL);
/** Multi-instance tests need a shared database and Redis: they run in the PostgreSQL + Redis pass only. */
export const multiInstance = usingPostgres && usingRedis;

export function testSecrets(): ResolvedSecrets {
  return {
    jwtSecretKey: randomBytes(48),
    encryptionKeys: generateEncryptionKeys('test1'),
    auditSigningKeyPem: generateAuditSigningKeyPem(),
    auditHmacKeys: generateAuditHmacKeys('test-m1'),
    generated: { jwt: false, encryption: false, auditSigning: false, auditHmac: false },
  };
}

let template: Promise<Blob | undefined> | undefined;

/**
 * The migrated embedded database the test run's global setup saved (see test/global-setup.ts), read once per worker;
 * undefined outside the test runner (benchmarks), where each app creates and migrates its own.
 */
function migratedTemplate(): Promise<Blob | undefined> {
  const file = process.env[PGLITE_TEMPLATE_ENV];
  if (!file) return Promise.resolve(undefined);
  template ??= readFile(file).then((bytes) => new Blob([bytes]));
  return template;
}

/** A fresh in-memory embedded database, migrated (from the run's template when there is one). */
export async function openTestDatabase(): Promise<Database> {
  return openDatabase({ embeddedTemplate: await migratedTemplate() });
}

export async function buildTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const baseUrl = process.env.DATABASE_URL;
  const ownsDatabase = !options.share && Boolean(baseUrl);
  const databaseUrl = options.share ? options.share.databaseUrl : baseUrl ? await createPostgresDatabase(baseUrl) : undefined;
  const env: Record<string, string> = {
    CDSA_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    RATE_LIMIT_REQUESTS: '100000',
    AUTH_RATE_LIMIT_REQUESTS: '100000',
    OLLAMA_BASE_URL: 'http://127.0.0.1:9',
    // The suites register their users through the API; the closed default is tested where it matters.
    REGISTRATION_MODE: 'open',
    // Periodic checkpoints are tested where they matter; elsewhere they would only leave delayed jobs behind.
    AUDIT_CHECKPOINT_INTERVAL: '0',
    // Production requires MFA of managers and admins; tests that are not about MFA sign them in with a password
    // alone. MFA tests pass MFA_REQUIRED_ROLES themselves.
    MFA_REQUIRED_ROLES: '',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    REDIS_KEY_PREFIX: options.share?.config.redisPrefix ?? `cdsa-test-${randomUUID().slice(0, 8)}`,
    ...options.env,
  };
  const config = loadConfig(env, '0.0.0-test');
  const secrets = { ...(options.share?.secrets ?? testSecrets()), ...options.secrets };
  // The embedded database this test app opened (and closes); a sharing instance borrows its owner's.
  let database: Database | undefined;
  if (!databaseUrl && !options.share) {
    database = options.embeddedDir ? await openDatabase({ embeddedDir: options.embeddedDir }) : await openTestDatabase();
  }
  const borrowed = !databaseUrl && options.share ? options.share.app.infra.database : undefined;
  const logger = options.logStream ? { ...(loggerOptions(config) as object), stream: options.logStream } : undefined;
  const app = await buildApp({ config, secrets, database: database ?? borrowed, logger });
  await options.beforeReady?.(app);
  await app.ready();
  if (options.processJobs ?? true) await app.infra.jobs.start();
  return {
    app,
    config,
    secrets,
    databaseUrl,
    async close() {
      await app.close();
      await database?.close();
      if (ownsDatabase && baseUrl && databaseUrl) await dropPostgresDatabase(baseUrl, databaseUrl);
    },
  };
}

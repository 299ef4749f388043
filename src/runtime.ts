import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, loggerOptions } from './app.js';
import { runAdminCommand } from './cli/admin-commands.js';
import { handleAdminConnection } from './cli/admin-socket.js';
import { ConfigError, loadConfig, type AppConfig } from './config.js';
import { acquireDataDirLock, type DataDirLock } from './lib/data-dir-lock.js';
import { ensureDataDir, loadSecrets } from './lib/secrets.js';
import { describeStartupError } from './lib/startup-errors.js';
import { VERSION } from './version.js';

/** Exit codes: 2 for configuration the operator must fix, 1 for anything else that stops start-up. */
export function exitOnStartupError(error: unknown): never {
  const { message, exitCode } = describeStartupError(error);
  console.error(message);
  process.exit(exitCode);
}

export interface RuntimeAppOptions {
  /** Where the log goes (standard output by default; the CLI keeps it on standard error). */
  logStream?: NodeJS.WritableStream;
}

export async function createRuntimeApp(overrides: Partial<AppConfig> = {}, options: RuntimeAppOptions = {}): Promise<FastifyInstance> {
  const config = { ...loadConfig(process.env, VERSION), ...overrides };
  const secrets = loadSecrets(config);
  const logger = options.logStream ? { ...(loggerOptions(config) as object), stream: options.logStream } : undefined;
  const app = await buildApp({ config, secrets, ...(logger ? { logger } : {}) });
  const generated = Object.entries(secrets.generated)
    .filter(([, wasGenerated]) => wasGenerated)
    .map(([name]) => name);
  if (generated.length > 0) {
    app.log.warn({ generated, data_dir: config.dataDir }, 'using development secrets generated into DATA_DIR; set them explicitly in production');
  }
  return app;
}

/**
 * Closes the app on SIGTERM/SIGINT within the grace period, then exits 0 (1 if closing failed or hung). DATA_DIR's lock
 * is released once the database is closed (a crash releases it too: see data-dir-lock.ts).
 */
export function closeOnSignals(app: FastifyInstance, lock?: DataDirLock): void {
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      app.log.error('graceful shutdown timed out');
      process.exit(1);
    }, app.config.shutdownGraceMs + 5_000);
    timer.unref();
    app
      .close()
      .then(() => lock?.release())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        app.log.error({ err: error }, 'error while shutting down');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

/**
 * On the embedded database, DATA_DIR belongs to this process before anything in it is read or written: a second
 * server refuses at once, and CLI commands are served through the lock's admin socket.
 */
async function lockDataDir(): Promise<DataDirLock | undefined> {
  const config = loadConfig(process.env, VERSION);
  if (config.databaseUrl) return undefined;
  ensureDataDir(config.dataDir);
  return acquireDataDirLock(config.dataDir, 'serve');
}

function serveAdminCommands(app: FastifyInstance, lock: DataDirLock): void {
  lock.onConnection((socket) => {
    void handleAdminConnection(socket, {
      token: lock.token,
      run: (command, args, io) => {
        app.log.info({ command }, 'admin command from the CLI');
        return runAdminCommand(app, command, args, io);
      },
      onError: (error, command) => app.log.error({ err: error, command }, 'admin command failed'),
    });
  });
}

export async function serve(options: { processJobs?: boolean } = {}): Promise<FastifyInstance> {
  const lock = await lockDataDir();
  const app = await createRuntimeApp(options.processJobs === undefined ? {} : { processJobs: options.processJobs });
  closeOnSignals(app, lock);
  if (app.config.processJobs) await app.infra.jobs.start();
  await app.listen({ port: app.config.port, host: app.config.host });
  if (lock) serveAdminCommands(app, lock);
  await announceFirstRunSetup(app);
  return app;
}

/**
 * First run: no administrator and no CDSA_ADMIN_*. Prints (on stderr, outside the structured log, once) a one-time
 * token for POST /api/v1/auth/setup and the other ways to create the first administrator.
 */
async function announceFirstRunSetup(app: FastifyInstance): Promise<void> {
  if (app.config.admin) return;
  const token = await app.identity.setup.issueToken();
  if (!token) return;
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : app.config.port;
  const host = ['0.0.0.0', '::'].includes(app.config.host) ? '127.0.0.1' : app.config.host;
  const body = JSON.stringify({ token, username: 'admin', email: 'admin@example.com', password: '<a passphrase of 12+ characters>' });
  process.stderr.write(
    [
      '',
      'cdsa: no administrator exists yet. Create the first one with this one-time setup token (valid until it is used',
      '      or this server stops):',
      `  curl -X POST http://${host}:${port}/api/v1/auth/setup -H 'content-type: application/json' -d '${body}'`,
      '  or, with the server running: npx cdsa users create --username admin --email admin@example.com --role ADMIN --password-stdin',
      '  or set CDSA_ADMIN_USERNAME, CDSA_ADMIN_EMAIL and CDSA_ADMIN_PASSWORD and restart.',
      `  Registration is ${app.config.registrationMode} (REGISTRATION_MODE).`,
      '',
      '',
    ].join('\n'),
  );
}

export async function runWorker(): Promise<FastifyInstance> {
  const config = loadConfig(process.env, VERSION);
  if (!config.databaseUrl || !config.redisUrl) {
    throw new ConfigError('REDIS_URL', 'a separate worker needs DATABASE_URL and REDIS_URL (the embedded database and in-process queue belong to `cdsa serve`)');
  }
  const app = await createRuntimeApp({ processJobs: true });
  closeOnSignals(app);
  let stopHeartbeat = () => {};
  app.addHook('onClose', async () => stopHeartbeat());
  await app.ready();
  await app.infra.jobs.start();
  stopHeartbeat = startWorkerHeartbeat(app);
  app.log.info('worker processing jobs');
  return app;
}

export const WORKER_HEARTBEAT_FILE = 'worker-heartbeat';
const HEARTBEAT_INTERVAL_MS = 10_000;

/**
 * The worker listens on no port, so its health check reads DATA_DIR/worker-heartbeat instead: touched after each
 * successful database and Redis check, it goes stale when the worker hangs or loses its dependencies.
 */
export function startWorkerHeartbeat(app: FastifyInstance, intervalMs = HEARTBEAT_INTERVAL_MS): () => void {
  const file = path.join(app.config.dataDir, WORKER_HEARTBEAT_FILE);
  const beat = async () => {
    try {
      await app.infra.database.ping();
      await app.infra.redis?.ping();
      fs.mkdirSync(app.config.dataDir, { recursive: true });
      fs.writeFileSync(file, new Date().toISOString());
    } catch (error) {
      app.log.warn({ err: error }, 'worker health check failed; the heartbeat file is not refreshed');
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

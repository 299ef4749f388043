import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type AppConfig } from './config.js';
import { DatabaseUnavailableError } from './db/client.js';
import { loadSecrets } from './lib/secrets.js';
import { VERSION } from './version.js';

/** Exit codes: 2 for configuration the operator must fix, 1 for anything else that stops start-up. */
export function exitOnStartupError(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(`cdsa: ${error.message}`);
    process.exit(2);
  }
  if (error instanceof DatabaseUnavailableError) {
    console.error(`cdsa: ${error.message}`);
    process.exit(1);
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    console.error('cdsa: the address is already in use: choose another PORT/HOST or stop the other process');
    process.exit(1);
  }
  if (code === 'EACCES') {
    console.error(`cdsa: permission denied: ${(error as Error).message}`);
    process.exit(1);
  }
  console.error(`cdsa: failed to start: ${(error as Error).message ?? String(error)}`);
  process.exit(1);
}

export async function createRuntimeApp(overrides: Partial<AppConfig> = {}): Promise<FastifyInstance> {
  const config = { ...loadConfig(process.env, VERSION), ...overrides };
  const secrets = loadSecrets(config);
  const app = await buildApp({ config, secrets });
  const generated = Object.entries(secrets.generated)
    .filter(([, wasGenerated]) => wasGenerated)
    .map(([name]) => name);
  if (generated.length > 0) {
    app.log.warn({ generated, data_dir: config.dataDir }, 'using development secrets generated into DATA_DIR; set them explicitly in production');
  }
  return app;
}

/** Closes the app on SIGTERM/SIGINT within the grace period, then exits 0 (1 if closing failed or hung). */
export function closeOnSignals(app: FastifyInstance): void {
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
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        app.log.error({ err: error }, 'error while shutting down');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

export async function serve(options: { processJobs?: boolean } = {}): Promise<FastifyInstance> {
  const app = await createRuntimeApp(options.processJobs === undefined ? {} : { processJobs: options.processJobs });
  closeOnSignals(app);
  if (app.config.processJobs) await app.infra.jobs.start();
  await app.listen({ port: app.config.port, host: app.config.host });
  return app;
}

export async function runWorker(): Promise<FastifyInstance> {
  const config = loadConfig(process.env, VERSION);
  if (!config.databaseUrl || !config.redisUrl) {
    throw new ConfigError('REDIS_URL', 'a separate worker needs DATABASE_URL and REDIS_URL (the embedded database and in-process queue belong to `cdsa serve`)');
  }
  const app = await createRuntimeApp({ processJobs: true });
  closeOnSignals(app);
  await app.ready();
  await app.infra.jobs.start();
  app.log.info('worker processing jobs');
  return app;
}

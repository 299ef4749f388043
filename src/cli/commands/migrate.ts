import type { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../../config.js';
import { openDatabase, type Database } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { processIO, type CommandIO } from '../command-io.js';
import { runCommand } from '../dispatch.js';

async function migrate(database: Database, io: CommandIO): Promise<number> {
  const result = await runMigrations(database);
  await io.out(`migrations applied (${database.kind}); vector search ${result.vectorSearch}\n`);
  return 0;
}

/** Inside a running server: its database was migrated at start-up; this applies anything newer (none, usually). */
export async function migrateHandler(app: FastifyInstance, _args: unknown, io: CommandIO): Promise<number> {
  return migrate(app.infra.database, io);
}

/** Without a server: only the database is needed (no secrets, no app). */
export async function migrateStandalone(config: AppConfig, io: CommandIO): Promise<number> {
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    embeddedDir: config.dataDir,
    connectTimeoutSeconds: config.databaseConnectTimeoutSeconds,
  });
  try {
    return await migrate(database, io);
  } finally {
    await database.close();
  }
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply database migrations (also done automatically at start-up)')
    .action(async () => {
      process.exitCode = await runCommand('migrate', {}, processIO());
    });
}

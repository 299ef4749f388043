import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { openDatabase } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { ensureDataDir } from '../../lib/secrets.js';
import { exitOnStartupError } from '../../runtime.js';
import { VERSION } from '../../version.js';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply database migrations (also done automatically at start-up)')
    .action(async () => {
      try {
        const config = loadConfig(process.env, VERSION);
        if (!config.databaseUrl) ensureDataDir(config.dataDir);
        const database = await openDatabase({
          databaseUrl: config.databaseUrl,
          embeddedDir: config.dataDir,
          connectTimeoutSeconds: config.databaseConnectTimeoutSeconds,
        });
        try {
          const result = await runMigrations(database);
          console.log(`migrations applied (${database.kind}); vector search ${result.vectorSearch}`);
        } finally {
          await database.close();
        }
      } catch (error) {
        exitOnStartupError(error);
      }
    });
}

import { Command } from 'commander';
import { VERSION } from '../version.js';
import { exitOnStartupError, runWorker, serve } from '../runtime.js';
import { registerCommands } from './commands/index.js';

const program = new Command();
program.name('cdsa').description('CDSA — Confidential Data Steward Agent').version(VERSION);

program
  .command('serve')
  .description('serve the HTTP API (and process background jobs unless --no-jobs)')
  .option('--no-jobs', 'do not process background jobs in this process (run `cdsa worker` instead)')
  .action(async (options: { jobs: boolean }) => {
    await serve({ processJobs: options.jobs }).catch(exitOnStartupError);
  });

program
  .command('worker')
  .description('process background jobs only (needs DATABASE_URL and REDIS_URL)')
  .action(async () => {
    await runWorker().catch(exitOnStartupError);
  });

registerCommands(program);

await program.parseAsync(process.argv);

import { Command } from 'commander';
import { VERSION } from '../version.js';
import { registerCommands } from './commands/index.js';

const program = new Command();
program.name('cdsa').description('CDSA — Confidential Data Steward Agent').version(VERSION);

program
  .command('serve')
  .description('serve the HTTP API (and process background jobs unless --no-jobs)')
  .option('--no-jobs', 'do not process background jobs in this process (run `cdsa worker` instead)')
  .action(async (options: { jobs: boolean }) => {
    const { exitOnStartupError, serve } = await import('../runtime.js');
    await serve({ processJobs: options.jobs }).catch(exitOnStartupError);
  });

program
  .command('worker')
  .description('process background jobs only (needs DATABASE_URL and REDIS_URL)')
  .action(async () => {
    const { exitOnStartupError, runWorker } = await import('../runtime.js');
    await runWorker().catch(exitOnStartupError);
  });

// The server is loaded only by the commands that run one: a command sent to a running server stays light.
registerCommands(program);

await program.parseAsync(process.argv);

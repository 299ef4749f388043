import type { Command } from 'commander';
import { registerMigrateCommand } from './migrate.js';

/** Subcommands beyond serve/worker, one file per domain. */
export function registerCommands(program: Command): void {
  registerMigrateCommand(program);
}

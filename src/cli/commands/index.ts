import type { Command } from 'commander';
import { registerAuditCommands } from './audit.js';
import { registerDocumentsCommand } from './documents.js';
import { registerMigrateCommand } from './migrate.js';
import { registerUsersCommand } from './users.js';
import { registerVaultCommand } from './vault.js';

/** Subcommands beyond serve/worker, one file per domain. */
export function registerCommands(program: Command): void {
  registerMigrateCommand(program);
  registerUsersCommand(program);
  registerAuditCommands(program);
  registerVaultCommand(program);
  registerDocumentsCommand(program);
}

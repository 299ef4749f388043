import { loadConfig, type AppConfig } from '../config.js';
import { acquireDataDirLock, DataDirBusyError, dataDirPaths, readAdminToken, type LockHolder } from '../lib/data-dir-lock.js';
import { ensureDataDir } from '../lib/secrets.js';
import { describeStartupError } from '../lib/startup-errors.js';
import { VERSION } from '../version.js';
import { refuseAdminConnection, sendAdminCommand } from './admin-socket.js';
import type { CommandIO } from './command-io.js';

/**
 * Runs a database command (src/cli/admin-commands.ts) where the database is, with the same output either way:
 * - DATABASE_URL: here (PostgreSQL takes any number of clients);
 * - the embedded database, no process on DATA_DIR: here, holding DATA_DIR's lock so no server opens it meanwhile;
 * - the embedded database held by a running server: inside that server, through its admin socket.
 * Returns the exit code; nothing here exits the process.
 */
export async function runCommand(name: string, args: unknown, io: CommandIO): Promise<number> {
  // Both ways see exactly what JSON carries (no undefined fields, no Dates).
  const payload: unknown = JSON.parse(JSON.stringify(args));
  try {
    const config = loadConfig(process.env, VERSION);
    if (config.databaseUrl) return await runHere(config, name, payload, io);
    ensureDataDir(config.dataDir);
    let lock;
    try {
      lock = await acquireDataDirLock(config.dataDir, 'cli');
    } catch (error) {
      if (!(error instanceof DataDirBusyError)) throw error;
      return await sendAdminCommand(dataDirPaths(config.dataDir).socket, { token: readAdminToken(config.dataDir), command: name, args: payload }, io);
    }
    const holder: LockHolder = { pid: process.pid, role: 'cli', started_at: new Date().toISOString() };
    lock.onConnection((socket) => void refuseAdminConnection(socket, describeStartupError(new DataDirBusyError(config.dataDir, holder)).message));
    try {
      return await runHere(config, name, payload, io);
    } finally {
      await lock.release();
    }
  } catch (error) {
    const { message, exitCode } = describeStartupError(error);
    await io.err(`${message}\n`);
    return exitCode;
  }
}

async function runHere(config: AppConfig, name: string, args: unknown, io: CommandIO): Promise<number> {
  // Loaded only here: a command sent to a running server needs none of the app.
  const { resolveAdminCommand, UnknownCommandError } = await import('./admin-commands.js');
  let resolved;
  try {
    resolved = resolveAdminCommand(name, args);
  } catch (error) {
    if (!(error instanceof UnknownCommandError)) throw error;
    await io.err(`cdsa: ${error.message}\n`);
    return 2;
  }
  const { command, args: checked } = resolved;
  if (command.standalone) return command.standalone(config, checked, io);
  const { withApp } = await import('./context.js');
  return withApp((app) => command.run(app, checked, io));
}

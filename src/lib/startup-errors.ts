import { DataDirBusyError } from './data-dir-lock.js';

/**
 * What to tell an operator when start-up (of the server or of a CLI command) fails, and the exit code: 2 for
 * configuration the operator must fix, 1 for anything else. Errors are recognised by name so that this module stays
 * light (the CLI loads it before deciding whether it needs the database at all).
 */
export function describeStartupError(error: unknown): { message: string; exitCode: number } {
  const name = (error as Error | undefined)?.name;
  const message = (error as Error | undefined)?.message ?? String(error);
  if (name === 'ConfigError') return { message: `cdsa: ${message}`, exitCode: 2 };
  if (error instanceof DataDirBusyError) {
    const advice =
      error.holder?.role === 'cli'
        ? 'wait for that command to finish, then try again'
        : 'the embedded database allows one process: stop that server first, use another DATA_DIR, or set DATABASE_URL ' +
          'to run several instances on PostgreSQL. CLI commands (cdsa users create, audit, vault rotate, migrate) need no ' +
          'restart: they reach the running server through DATA_DIR/run/admin.sock';
    return { message: `cdsa: ${message}; ${advice}`, exitCode: 1 };
  }
  if (name === 'DatabaseUnavailableError') return { message: `cdsa: ${message}`, exitCode: 1 };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') {
    return { message: 'cdsa: the address is already in use: choose another PORT/HOST or stop the other process', exitCode: 1 };
  }
  if (code === 'EACCES') return { message: `cdsa: permission denied: ${message}`, exitCode: 1 };
  return { message: `cdsa: failed to start: ${message}`, exitCode: 1 };
}

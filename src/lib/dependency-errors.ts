import { DependencyUnavailableError } from './errors.js';

/**
 * Recognises the errors that mean "a dependency is unreachable" rather than "this request is wrong" or "we have a bug":
 * the database (node-postgres or the embedded PGlite) and Redis (ioredis). The one error handler answers them with
 * 503 naming the dependency and a Retry-After, instead of a generic 500; everything that reaches a client or a log
 * through here names the dependency only, never its address or the failed statement.
 */
export type Dependency = 'database' | 'redis';

/** Seconds a client is told to wait before retrying after a dependency failure. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

/**
 * SQLSTATE classes and codes of a server that is going away, starting, overloaded or unreachable: 08 connection
 * exception, 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 53300 too many connections.
 */
const DATABASE_UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '53300']);
const SOCKET_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** node-postgres and pg-pool raise these as plain Errors; PGlite says it is closed once shut down. */
const DATABASE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'is not queryable',
  'Cannot use a pool after calling end on the pool',
  'PGlite is closed',
];
/** ioredis with its offline queue off, or out of retries, or a command that got no answer in time. */
const REDIS_MESSAGES = [
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Reached the max retries per request limit',
  'Connection is closed.',
  'Command timed out',
];

function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  // Drizzle wraps the driver's error in DrizzleQueryError (`cause`); a few levels are plenty.
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth += 1) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

function redisFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  return REDIS_MESSAGES.some((message) => error.message.startsWith(message));
}

function databaseFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (DATABASE_UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
    if (SOCKET_ERROR_CODES.has(code)) return true;
  }
  // Node 20 reports a refused connection to a name with several addresses as an AggregateError of socket errors.
  if (error instanceof AggregateError && error.errors.some((inner) => databaseFailure(inner))) return true;
  return DATABASE_MESSAGES.some((message) => error.message.includes(message));
}

/**
 * Which dependency this error says is unavailable, or undefined when it is not such an error. Redis is recognised by
 * its client's own messages first, so a bare socket error (which only the database driver lets through) is the
 * database's.
 */
export function unavailableDependency(error: unknown): Dependency | undefined {
  const chain = causes(error);
  if (chain.some(redisFailure)) return 'redis';
  if (chain.some(databaseFailure)) return 'database';
  return undefined;
}

export const DEPENDENCY_NAMES: Record<Dependency, string> = { database: 'The database', redis: 'Redis' };

/** The domain error for an unavailable dependency, or undefined when `error` is something else. */
export function asDependencyError(error: unknown): DependencyUnavailableError | undefined {
  if (error instanceof DependencyUnavailableError) return error;
  const dependency = unavailableDependency(error);
  if (!dependency) return undefined;
  return new DependencyUnavailableError(
    dependency,
    `${DEPENDENCY_NAMES[dependency]} is unavailable right now; retry in a few seconds`,
    DEPENDENCY_RETRY_AFTER_SECONDS,
  );
}

/**
 * What to log about a dependency failure: the driver's own message (the innermost cause), never the wrapper's, which
 * for a failed query quotes the statement and its parameters.
 */
export function dependencyFailureMessage(error: unknown): string {
  const root = causes(error).at(-1);
  return root instanceof Error ? root.message : String(root);
}

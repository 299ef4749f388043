/**
 * The log serializer for `err`. Errors from the database carry what the statement was bound to: Drizzle's
 * DrizzleQueryError puts the parameters in `params` and in its message and stack ("Failed query: …\nparams: …"), and
 * PostgreSQL's own errors echo values in `message` (`invalid input syntax for type uuid: "…"`) and `detail`
 * (`Key (email)=(…) already exists`). Parameters are password hashes, e-mail addresses, secret names, prompts: the log
 * gets the statement text and the SQLSTATE, never the values. Every other error keeps its message and stack.
 */

type Serialized = Record<string, unknown>;

const MAX_CAUSE_DEPTH = 5;
/** Fields of PostgreSQL's error that name where it failed, never what was bound. */
const DATABASE_ERROR_FIELDS = ['code', 'severity', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine', 'position'] as const;
/** Own properties never copied from any error: they hold bound values or user input. */
const NEVER_COPIED = new Set(['params', 'parameters', 'values', 'detail', 'where', 'hint', 'internalQuery', 'message', 'stack', 'cause', 'name']);

interface QueryError extends Error {
  query: string;
  params: unknown[];
}

function isQueryError(error: Error): error is QueryError {
  const candidate = error as Partial<QueryError>;
  return typeof candidate.query === 'string' && Array.isArray(candidate.params);
}

/** pg-protocol's DatabaseError (node-postgres and PGlite alike): a SQLSTATE and a severity. */
function isDatabaseError(error: Error): boolean {
  const candidate = error as { code?: unknown; severity?: unknown };
  return typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code) && typeof candidate.severity === 'string';
}

/** The stack's frames without its first line(s), which repeat the message. */
function framesOf(stack: string | undefined): string | undefined {
  if (!stack) return undefined;
  const at = stack.indexOf('\n    at ');
  return at < 0 ? undefined : stack.slice(at + 1);
}

function typeOf(error: Error): string {
  return error.constructor?.name && error.constructor.name !== 'Object' && error.constructor.name.length > 2 ? error.constructor.name : error.name;
}

function serialize(value: unknown, depth: number): unknown {
  if (!(value instanceof Error)) {
    // A message passed as a string (`err: error.message`) can be a DrizzleQueryError's: cut its parameter line.
    return typeof value === 'string' ? value.replace(/\nparams: [\s\S]*$/, '\nparams: [not logged]') : value;
  }
  const out: Serialized = { type: typeOf(value) };
  if (isQueryError(value)) {
    out.message = 'Failed query';
    out.query = value.query;
    out.stack = framesOf(value.stack);
  } else if (isDatabaseError(value)) {
    out.type = 'DatabaseError';
    for (const field of DATABASE_ERROR_FIELDS) {
      const fieldValue = (value as unknown as Record<string, unknown>)[field];
      if (fieldValue !== undefined && fieldValue !== null && fieldValue !== '') out[field] = fieldValue;
    }
    out.message = `database error ${String(out.code)}`;
  } else {
    out.message = value.message;
    out.stack = value.stack;
    for (const [key, fieldValue] of Object.entries(value)) {
      if (!NEVER_COPIED.has(key) && (fieldValue === null || ['string', 'number', 'boolean'].includes(typeof fieldValue))) out[key] = fieldValue;
    }
  }
  if (value.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serialize(value.cause, depth + 1);
  return out;
}

/** What pino (and Fastify's logger type) expect of an error serializer. */
export interface SerializedError {
  type: string;
  message: string;
  stack: string;
  [field: string]: unknown;
}

export function serializeErrorForLog(error: unknown): SerializedError {
  const serialized = serialize(error, 0);
  if (serialized && typeof serialized === 'object') {
    const fields = serialized as Serialized;
    return { ...fields, type: String(fields.type), message: String(fields.message ?? ''), stack: typeof fields.stack === 'string' ? fields.stack : '' };
  }
  return { type: typeof error, message: String(serialized), stack: '' };
}

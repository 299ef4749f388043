import { BadRequestError } from './errors.js';

/** Opaque cursors: base64url JSON of the last row's sort key. Clients must not build them. */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/**
 * What each field of a cursor must be. A cursor comes back from the client, so it is untrusted input: every value is
 * checked to be something the column it is compared with accepts (a forged one must be a 4xx, never a database error).
 * `timestamp` is an ISO-8601 UTC string exactly as `toISOString()` writes it (years 1000–9999); `integer` fits PostgreSQL's
 * `integer`, `bigint` is any safe integer; `string` is short and free of control characters.
 */
export type CursorFieldKind = 'string' | 'uuid' | 'timestamp' | 'integer' | 'bigint';
type CursorValue<K extends CursorFieldKind> = K extends 'integer' | 'bigint' ? number : string;
export type CursorOf<S extends Record<string, CursorFieldKind>> = { [F in keyof S]: CursorValue<S[F]> };

const MAX_STRING_FIELD = 512;
const MAX_CURSOR_LENGTH = 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_UTC = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

function fits(kind: CursorFieldKind, value: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string' && value.length <= MAX_STRING_FIELD && !CONTROL.test(value);
    case 'uuid':
      return typeof value === 'string' && UUID.test(value);
    case 'timestamp':
      // The round trip refuses what Date would quietly roll over (31 February) and the database would not.
      return typeof value === 'string' && ISO_UTC.test(value) && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value;
    case 'integer':
      return Number.isInteger(value) && (value as number) >= -(2 ** 31) && (value as number) < 2 ** 31;
    case 'bigint':
      return Number.isSafeInteger(value);
  }
}

/** A cursor the API did not issue is a malformed request (400), not a schema violation: clients must not build cursors. */
export function invalidCursor(): BadRequestError {
  return new BadRequestError('Invalid cursor', [{ pointer: '/cursor', detail: 'is not a cursor returned by this API' }]);
}

/** The cursor's fields, each checked against its kind; undefined when there is no cursor, a 400 when it is not one of ours. */
export function decodeCursor<S extends Record<string, CursorFieldKind>>(cursor: string | undefined, shape: S): CursorOf<S> | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  // Ours are a few dozen characters; anything long is forged (the request line itself is bounded by the HTTP parser).
  if (cursor.length > MAX_CURSOR_LENGTH) throw invalidCursor();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalidCursor();
  const fields = parsed as Record<string, unknown>;
  for (const [field, kind] of Object.entries(shape)) {
    if (!Object.hasOwn(fields, field) || !fits(kind, fields[field])) throw invalidCursor();
  }
  return Object.fromEntries(Object.keys(shape).map((field) => [field, fields[field]])) as CursorOf<S>;
}
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/** A page size within 1..MAX_PAGE_SIZE (DEFAULT_PAGE_SIZE when absent), for services called outside HTTP too. */
export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  return Math.min(Math.max(1, Math.trunc(limit)), MAX_PAGE_SIZE);
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Fetch `limit + 1` rows, then call this to cut the page and compute the next cursor. */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  cursorOf: (row: Row) => Record<string, string | number>,
  present: (row: Row) => Item,
): Page<Item> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(present),
    next_cursor: hasMore && last !== undefined ? encodeCursor(cursorOf(last)) : null,
  };
}

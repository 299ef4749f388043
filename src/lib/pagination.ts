import { ValidationError } from './errors.js';

/** Opaque cursors: base64url JSON of the last row's sort key. Clients must not build them. */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor<T extends Record<string, string | number>>(cursor: string | undefined, fields: (keyof T)[]): T | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && fields.every((field) => field in (parsed as object))) {
      return parsed as T;
    }
  } catch {
    // fall through to the validation error
  }
  throw new ValidationError('Invalid cursor', [{ pointer: '/cursor', detail: 'is not a cursor returned by this API' }]);
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

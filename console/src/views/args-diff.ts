/** A difference between two calls' arguments, at a dotted path (`recipient.iban`, `items.0`). */
export interface ArgChange {
  path: string;
  kind: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What changed from `before` to `after`, nested objects and arrays compared member by member. */
export function diffArgs(before: unknown, after: unknown, path = ''): ArgChange[] {
  const bothObjects = isPlainObject(before) && isPlainObject(after);
  const bothArrays = Array.isArray(before) && Array.isArray(after);
  if (!bothObjects && !bothArrays) return same(before, after) ? [] : [{ path: path || '(arguments)', kind: 'changed', before, after }];
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  if (bothObjects) keys.sort();
  const changes: ArgChange[] = [];
  for (const key of keys) {
    const at = path ? `${path}.${key}` : key;
    if (!(key in b)) changes.push({ path: at, kind: 'removed', before: a[key] });
    else if (!(key in a)) changes.push({ path: at, kind: 'added', after: b[key] });
    else changes.push(...diffArgs(a[key], b[key], at));
  }
  return changes;
}

export function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

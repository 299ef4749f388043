/**
 * Defence in depth: services never put secrets in audit details, and this removes any that slip through. Keys are
 * matched by name at every depth; the value is replaced, the key kept, so the event still says something was there.
 *
 * It also makes details storable and hashable as they are: PostgreSQL's jsonb rejects U+0000, canonical JSON rejects
 * lone surrogates and non-finite numbers. Whatever this returns reads back from the database unchanged, so the hash
 * computed at insert time is the one a verifier recomputes later.
 */
const SENSITIVE_KEY = /(pass(word)?|secret|token|api[_-]?key|authorization|cookie|private[_-]?key|^value$|plaintext|ciphertext|credential)/i;
const ALLOWED_KEYS = new Set([
  'token_count',
  'input_tokens',
  'output_tokens',
  'total_tokens',
  'tokens',
  'value_hmac',
  'value_fingerprint',
  'secret_name',
  'secret_id',
  'token_family_revoked',
  'api_key_id',
]);
/** A JSON Web Token or a bearer credential written as a value, whatever its key. */
const CREDENTIAL_VALUE = /(^|\s)(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|Bearer\s+\S{16,})/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export const REDACTED = '[REDACTED]';
const MAX_STRING = 2_000;
/** Prompts are only present when AUDIT_LOG_PROMPTS=true; the operator asked for them whole. */
const LONG_STRING_KEYS = new Set(['prompt', 'response']);
const MAX_LONG_STRING = 100_000;
const MAX_DEPTH = 8;
const MAX_ITEMS = 200;

/** Text as jsonb and canonical JSON accept it: no U+0000, no lone surrogates. */
export function storableText(value: string): string {
  return value.replaceAll('\u0000', '').replace(LONE_SURROGATE, '\uFFFD');
}

function sanitizeString(value: string, maxLength: number): string {
  const text = storableText(value);
  if (CREDENTIAL_VALUE.test(text)) return REDACTED;
  return text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
}

function sanitizeValue(value: unknown, depth: number, maxString: number): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return sanitizeString(value, maxString);
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (depth >= MAX_DEPTH) return REDACTED;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) {
    return value.slice(0, MAX_ITEMS).map((item) => sanitizeValue(item, depth + 1, MAX_STRING) ?? null);
  }
  if (value instanceof Map) return sanitizeObject(Object.fromEntries(value), depth);
  if (value instanceof Set) return sanitizeValue([...value], depth, maxString);
  if (value instanceof Error) return sanitizeObject({ name: value.name, message: value.message }, depth);
  return sanitizeObject(value as Record<string, unknown>, depth);
}

function sanitizeObject(value: Record<string, unknown>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [rawKey, inner] of Object.entries(value)) {
    const key = storableText(rawKey);
    if (SENSITIVE_KEY.test(key) && !ALLOWED_KEYS.has(key)) {
      if (inner !== undefined) out[key] = REDACTED;
      continue;
    }
    const clean = sanitizeValue(inner, depth + 1, LONG_STRING_KEYS.has(key) ? MAX_LONG_STRING : MAX_STRING);
    if (clean !== undefined) out[key] = clean;
  }
  return out;
}

/** Audit details as they may be stored: no secrets by key or by shape, and exactly representable in jsonb. */
export function sanitizeDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (details === undefined || details === null || typeof details !== 'object' || Array.isArray(details)) return {};
  return sanitizeObject(details, 0);
}

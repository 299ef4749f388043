/**
 * Defence in depth: services never put secrets in audit details, and this removes any that slip through. Keys are
 * matched by name at every depth; the value is replaced, the key kept, so the event still says something was there.
 */
const SENSITIVE_KEY = /(pass(word)?|secret|token|api[_-]?key|authorization|cookie|private[_-]?key|^value$|plaintext|ciphertext)/i;
const ALLOWED_KEYS = new Set(['token_count', 'input_tokens', 'output_tokens', 'total_tokens', 'tokens', 'value_hmac', 'secret_name', 'secret_id', 'token_family_revoked']);

export const REDACTED = '[REDACTED]';

export function sanitizeDetails(value: unknown, depth = 0): unknown {
  if (depth > 8) return REDACTED;
  if (Array.isArray(value)) return value.slice(0, 200).map((item) => sanitizeDetails(item, depth + 1));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = SENSITIVE_KEY.test(key) && !ALLOWED_KEYS.has(key) ? REDACTED : sanitizeDetails(inner, depth + 1);
    }
    return out;
  }
  if (typeof value === 'string' && value.length > 2_000) return `${value.slice(0, 2_000)}…`;
  if (value instanceof Date) return value.toISOString();
  return value;
}

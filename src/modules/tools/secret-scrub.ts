export const SCRUBBED = '[REDACTED]';

/** Shorter values would blank out ordinary text; such secrets are too weak to guard this way anyway. */
const MIN_SCRUB_LENGTH = 6;

/**
 * Removes a secret a remote echoed back (e.g. a service that returns the request headers), as written and as it
 * appears inside a JSON string, so it reaches neither the result, the stored execution, the model nor the cache.
 */
export function scrubSecret(text: string, secret: string | undefined): string {
  if (secret === undefined || secret.length < MIN_SCRUB_LENGTH || text === '') return text;
  let out = text.split(secret).join(SCRUBBED);
  const jsonEscaped = JSON.stringify(secret).slice(1, -1);
  if (jsonEscaped !== secret) out = out.split(jsonEscaped).join(SCRUBBED);
  return out;
}

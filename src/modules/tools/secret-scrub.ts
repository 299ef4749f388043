export const SCRUBBED = '[REDACTED]';

/** Shorter values would blank out ordinary text; such secrets are too weak to guard this way anyway. */
const MIN_SCRUB_LENGTH = 6;
/** Encoded fragments shorter than this are not removed: they would match ordinary text by chance. */
const MIN_FRAGMENT_LENGTH = 6;

/**
 * The characters of base64(anything + secret + anything) that depend on the secret's bytes only, for each of the three
 * offsets (modulo 3) the secret can have in the encoded plaintext — e.g. after `Bearer ` in an echoed header. The one
 * or two characters at either end that mix in neighbouring bytes are left; they carry a few bits at most.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset += 1) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(2)]).toString('base64');
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    cores.push(padded.slice(first, end));
  }
  return cores;
}

/** The forms in which a remote may hand a secret back: as written, base64 and base64url, hex, URL- and JSON-escaped. */
export function secretEncodings(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret]);
  const add = (form: string): void => {
    if (form.length < MIN_FRAGMENT_LENGTH) return;
    forms.add(form);
    // As it appears in JSON written by a serialiser that escapes the solidus (base64 has them too).
    if (form.includes('/')) forms.add(form.replace(/\//g, '\\/'));
  };
  const json = JSON.stringify(secret).slice(1, -1);
  add(json);
  // JSON that escapes everything outside ASCII (as some serialisers do).
  add(json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  for (const url of [encodeURIComponent(secret), encodeURI(secret)]) {
    add(url);
    add(url.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()));
    add(url.replace(/%20/g, '+'));
  }
  const hex = bytes.toString('hex');
  add(hex);
  add(hex.toUpperCase());
  // The secret encoded on its own, padding included, is removed whole; inside a longer encoding, its core is.
  for (const encoding of ['base64', 'base64url'] as const) {
    const whole = bytes.toString(encoding);
    add(whole);
    add(whole.replace(/=+$/, ''));
  }
  for (const core of base64Cores(bytes)) {
    add(core);
    add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  // Longest first, so a form that contains another is removed whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

export interface SecretScrubber {
  /** False when no secret is guarded (nothing to do). */
  readonly active: boolean;
  text(value: string): string;
  /** Every string of a JSON-like value, object keys included. */
  deep<T>(value: T): T;
}

/**
 * Removes secrets a remote echoed back (a service that returns the request headers, raw or encoded), so they reach
 * neither the result, the stored execution, the error, the log, the model nor the cache.
 */
export function createSecretScrubber(secrets: ReadonlyArray<string | undefined>): SecretScrubber {
  const forms = [
    ...new Set(secrets.filter((s): s is string => s !== undefined && s.length >= MIN_SCRUB_LENGTH).flatMap(secretEncodings)),
  ].sort((a, b) => b.length - a.length);
  const text = (value: string): string => {
    if (forms.length === 0 || value === '') return value;
    let out = value;
    for (const form of forms) if (out.includes(form)) out = out.split(form).join(SCRUBBED);
    return out;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) out[text(key)] = walk(inner);
      return out;
    }
    return value;
  };
  return { active: forms.length > 0, text, deep: <T>(value: T): T => (forms.length === 0 ? value : (walk(value) as T)) };
}

/** One secret out of one text (see createSecretScrubber). */
export function scrubSecret(text: string, secret: string | undefined): string {
  return createSecretScrubber([secret]).text(text);
}

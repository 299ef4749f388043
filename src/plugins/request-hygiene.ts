import fp from 'fastify-plugin';
import { ValidationError } from '../lib/errors.js';

/**
 * Two limits every request meets before validation, whatever its route:
 * - JSON bodies nest at most MAX_JSON_DEPTH levels. The depth is counted on the text, without recursion, before the
 *   body is parsed; anything deeper (20,000 levels of tool arguments) would otherwise overflow the stack of whatever
 *   walks it later (validation, canonical JSON, the database driver).
 * - No NUL character in any string or key of a body, a query parameter or a path parameter: PostgreSQL text and jsonb
 *   cannot hold one, so it could only ever end as a database error.
 * Both are 422 problems with a pointer. Other control characters are the schemas' business (lib/text-formats.ts).
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x7b, 0x5b]);
const CLOSERS = new Set([0x7d, 0x5d]);

/** Whether JSON text nests arrays and objects deeper than `limit` (brackets inside strings are not nesting). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH) i += 1;
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) {
      inString = true;
    } else if (OPENERS.has(code)) {
      depth += 1;
      if (depth > limit) return true;
    } else if (CLOSERS.has(code)) {
      depth -= 1;
    }
  }
  return false;
}

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** The JSON pointer of the first string or key holding a NUL, walking with an explicit stack; undefined if none. */
export function pointerToNul(value: unknown): string | undefined {
  const stack: { value: unknown; pointer: string }[] = [{ value, pointer: '' }];
  while (stack.length > 0) {
    const { value: current, pointer } = stack.pop()!;
    if (typeof current === 'string') {
      if (current.includes('\u0000')) return pointer || '/';
    } else if (current !== null && typeof current === 'object') {
      for (const [key, member] of Object.entries(current)) {
        if (key.includes('\u0000')) return pointer || '/';
        stack.push({ value: member, pointer: `${pointer}/${escapePointer(key)}` });
      }
    }
  }
  return undefined;
}

const NUL_DETAIL = 'must not contain a NUL character';

export const requestHygienePlugin = fp(
  async (app) => {
    // Fastify's own parser (with its __proto__ and constructor poisoning checks) does the parsing.
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      // Clients send `Content-Type: application/json` with no body on bodiless POSTs (logout, mark-all-read): an
      // empty body is no body (a route that needs one still answers 422), not a 400.
      if (body === '') {
        done(null, undefined);
        return;
      }
      if (nestsDeeperThan(body as string, MAX_JSON_DEPTH)) {
        done(new ValidationError('The request is invalid', [{ pointer: '/', detail: `nests deeper than ${MAX_JSON_DEPTH} levels` }]), undefined);
        return;
      }
      parseJson(request, body as string, (error, value) => {
        if (error) return done(error, undefined);
        const pointer = pointerToNul(value);
        if (pointer !== undefined) return done(new ValidationError('The request is invalid', [{ pointer, detail: NUL_DETAIL }]), undefined);
        done(null, value);
      });
    });

    app.addHook('preValidation', async (request) => {
      for (const [context, values] of [
        ['querystring', request.query],
        ['params', request.params],
      ] as const) {
        const pointer = pointerToNul(values);
        if (pointer !== undefined) throw new ValidationError('The request is invalid', [{ pointer, detail: `${context}: ${NUL_DETAIL}` }]);
      }
    });
  },
  { name: 'request-hygiene' },
);

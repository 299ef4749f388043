import type { JsonSchemaDocument } from '../../../db/schema/tools.js';
import type { FieldError } from '../../../lib/errors.js';
import { checkEgressUrl, EgressError, FRAMING_HEADERS, toolEgressFetch } from '../egress.js';
import { scrubSecret } from '../secret-scrub.js';
import { ToolRunError, type BuiltinTool } from './types.js';

export const DEFAULT_AUTH_HEADER = 'Authorization';
export const DEFAULT_AUTH_SCHEME = 'Bearer';

/** Headers the caller (or the model) may not set: transport framing, and every credential-bearing header. */
const RESERVED_HEADERS = new Set([...FRAMING_HEADERS, 'proxy-authorization', 'proxy-connection', 'authorization', 'cookie']);

/** Response headers passed back; the others (cookies among them) stay out of results. */
const RETURNED_HEADERS = ['content-type', 'content-length', 'location', 'etag', 'last-modified', 'retry-after'];

/**
 * The response headers a call that carried a secret returns: only those the tool's output schema names under
 * `properties.headers.properties` (a remote may echo the credential in any of them, encoded beyond recognition).
 */
function headersAskedFor(outputSchema: JsonSchemaDocument | null): string[] {
  const properties = outputSchema?.properties;
  if (typeof properties !== 'object' || properties === null) return [];
  const headers = (properties as Record<string, unknown>).headers;
  if (typeof headers !== 'object' || headers === null) return [];
  const named = (headers as Record<string, unknown>).properties;
  if (typeof named !== 'object' || named === null) return [];
  const asked = new Set(Object.keys(named).map((name) => name.toLowerCase()));
  return RETURNED_HEADERS.filter((name) => asked.has(name));
}

function isJsonContentType(value: string | null): boolean {
  return value !== null && /^application\/([a-z0-9.+-]*\+)?json\b/i.test(value.trim());
}

/**
 * GET or POST to an allowed host. An optional credential is taken from the vault by the name in the tool's
 * implementation (`secret_name`) and sent in `auth_header`; it is never part of the arguments, any echo of it in the
 * response (raw or encoded) is removed before the result is stored or shown, and such a call returns only the response
 * headers the tool's output schema names.
 */
export const httpRequestTool: BuiltinTool = {
  name: 'http_request',
  description:
    'Sends an HTTP GET or POST request to an allowed host and returns the status, a few response headers and the body (parsed when it is JSON). Redirects are not followed.',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      method: { type: 'string', enum: ['GET', 'POST'], description: 'default GET' },
      url: { type: 'string', format: 'uri', maxLength: 2048, description: 'an http(s) URL on an allowed host' },
      headers: {
        type: 'object',
        maxProperties: 20,
        propertyNames: { pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,64}$' },
        additionalProperties: { type: 'string', maxLength: 2048 },
      },
      body: { description: 'POST only: a string is sent as it is, anything else as JSON' },
    },
  },
  outputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['status', 'headers', 'body'],
    properties: {
      status: { type: 'integer' },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      body: {},
    },
  },
  requiresApproval: true,
  options: ['secret_name', 'auth_header', 'auth_scheme', 'timeout_ms', 'max_response_bytes'],
  seed: true,
  checkArgs(args, { allowlist }) {
    const errors: FieldError[] = [];
    try {
      checkEgressUrl(typeof args.url === 'string' ? args.url : '', allowlist);
    } catch (error) {
      if (!(error instanceof EgressError)) throw error;
      errors.push({ pointer: '/url', detail: error.message });
    }
    if (args.body !== undefined && args.method !== 'POST') errors.push({ pointer: '/body', detail: 'a body can only be sent with POST' });
    for (const name of Object.keys((args.headers ?? {}) as Record<string, unknown>)) {
      if (RESERVED_HEADERS.has(name.toLowerCase())) errors.push({ pointer: `/headers/${name}`, detail: 'cannot be set by the caller' });
    }
    return errors;
  },
  async run(args, context) {
    const method = args.method === 'POST' ? 'POST' : 'GET';
    const url = typeof args.url === 'string' ? args.url : '';
    const implementation = context.implementation;
    const authHeader = (implementation.auth_header ?? DEFAULT_AUTH_HEADER).toLowerCase();

    const headers: Record<string, string> = {};
    const requested = (args.headers ?? {}) as Record<string, string>;
    for (const [name, value] of Object.entries(requested)) {
      const lowered = name.toLowerCase();
      if (RESERVED_HEADERS.has(lowered) || lowered === authHeader) {
        throw new ToolRunError('reserved_header', `the header "${name}" cannot be set by the caller`);
      }
      headers[lowered] = value;
    }

    let body: string | undefined;
    if (args.body !== undefined) {
      if (method !== 'POST') throw new ToolRunError('body_not_allowed', 'a body can only be sent with POST');
      if (typeof args.body === 'string') {
        body = args.body;
        headers['content-type'] ??= 'text/plain; charset=utf-8';
      } else {
        body = JSON.stringify(args.body);
        headers['content-type'] ??= 'application/json';
      }
    }

    let secret: string | undefined;
    if (implementation.secret_name) {
      secret = await context.useSecret(implementation.secret_name);
      const scheme = implementation.auth_scheme ?? DEFAULT_AUTH_SCHEME;
      headers[authHeader] = scheme === '' ? secret : `${scheme} ${secret}`;
    }

    const response = await toolEgressFetch(
      {
        method,
        url,
        headers,
        body,
        timeoutMs: implementation.timeout_ms,
        maxResponseBytes: implementation.max_response_bytes,
        signal: context.signal,
      },
      context.allowlist,
    );
    const returned: Record<string, string> = {};
    for (const name of secret === undefined ? RETURNED_HEADERS : headersAskedFor(context.outputSchema)) {
      const value = response.headers.get(name);
      if (value !== null) returned[name] = scrubSecret(value, secret);
    }
    const text = scrubSecret(response.body, secret);
    let parsed: unknown = text;
    if (isJsonContentType(response.headers.get('content-type')) && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: response.status, headers: returned, body: parsed };
  },
};

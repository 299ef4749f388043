/**
 * Every request a tool makes leaves through here: only to hosts in TOOL_HTTP_ALLOWLIST, http(s) only, no
 * credentials in the URL, redirects never followed (a 3xx is returned as it is, so an allowed host cannot bounce the
 * call to one that is not), a deadline, and a cap on the response size.
 */

import { ToolRunError } from './builtins/types.js';

export const DEFAULT_EGRESS_TIMEOUT_MS = 15_000;
export const MAX_EGRESS_TIMEOUT_MS = 120_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 1_048_576;
export const MAX_RESPONSE_BYTES_LIMIT = 16_777_216;

/** Transport framing headers: the HTTP client derives them from the request itself, so no tool or caller sets them. */
export const FRAMING_HEADERS: readonly string[] = ['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'expect', 'keep-alive'];

export type EgressErrorCode = 'not_allowed' | 'invalid_url' | 'timeout' | 'too_large' | 'network';

export class EgressError extends Error {
  constructor(
    readonly code: EgressErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EgressError';
  }
}

interface AllowlistEntry {
  host: string;
  port: string | null;
}

function parseEntry(entry: string): AllowlistEntry {
  const lowered = entry.toLowerCase();
  if (lowered.startsWith('[')) {
    const end = lowered.indexOf(']');
    const host = lowered.slice(0, end + 1);
    const rest = lowered.slice(end + 1);
    return { host, port: rest.startsWith(':') ? rest.slice(1) : null };
  }
  const colon = lowered.lastIndexOf(':');
  return colon === -1 ? { host: lowered, port: null } : { host: lowered.slice(0, colon), port: lowered.slice(colon + 1) };
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

/** `host` allows any port of that host; `host:port` only that port. Host names compare case-insensitively. */
export function createAllowlist(entries: readonly string[]) {
  const parsed = entries.map(parseEntry);
  return {
    get empty(): boolean {
      return parsed.length === 0;
    },
    allows(url: URL): boolean {
      const host = url.hostname.toLowerCase().replace(/\.$/, '');
      const port = url.port === '' ? defaultPort(url.protocol) : url.port;
      return parsed.some((entry) => entry.host === host && (entry.port === null || entry.port === port));
    },
  };
}

export type Allowlist = ReturnType<typeof createAllowlist>;

/** Parses and checks a URL a tool wants to reach; throws EgressError (with a message safe to show) when refused. */
export function checkEgressUrl(raw: string, allowlist: Allowlist): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EgressError('invalid_url', 'is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressError('invalid_url', 'must use http or https');
  if (url.username !== '' || url.password !== '') {
    throw new EgressError('invalid_url', 'must not contain credentials; reference a vault secret instead');
  }
  if (!allowlist.allows(url)) {
    throw new EgressError('not_allowed', `host ${url.host} is not in TOOL_HTTP_ALLOWLIST`);
  }
  return url;
}

export interface EgressRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  maxResponseBytes?: number;
  /** Aborts the request early (the execution's own deadline). */
  signal?: AbortSignal;
}

export interface EgressResponse {
  status: number;
  headers: Headers;
  body: string;
  bytes: number;
}

async function readLimited(response: Response, maxBytes: number): Promise<{ text: string; bytes: number }> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new EgressError('too_large', `response is larger than ${maxBytes} bytes`);
  }
  if (!response.body) return { text: '', bytes: 0 };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new EgressError('too_large', `response is larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return { text: Buffer.concat(chunks).toString('utf8'), bytes: total };
}

/** Sends one request under the egress rules. The allowlist is checked here, at call time, whatever was checked before. */
export async function egressFetch(request: EgressRequest, allowlist: Allowlist): Promise<EgressResponse> {
  const url = checkEgressUrl(request.url, allowlist);
  const timeoutMs = Math.min(request.timeoutMs ?? DEFAULT_EGRESS_TIMEOUT_MS, MAX_EGRESS_TIMEOUT_MS);
  const maxBytes = Math.min(request.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES_LIMIT);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = request.signal ? AbortSignal.any([deadline, request.signal]) : deadline;
  try {
    const response = await fetch(url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: 'manual',
      signal,
    });
    const { text, bytes } = await readLimited(response, maxBytes);
    return { status: response.status, headers: response.headers, body: text, bytes };
  } catch (error) {
    if (error instanceof EgressError) throw error;
    if (deadline.aborted) throw new EgressError('timeout', `no complete response within ${timeoutMs} ms`);
    if (request.signal?.aborted) throw new EgressError('timeout', 'the execution deadline passed');
    // The cause may hold internal addresses; the client gets the category only.
    throw new EgressError('network', `request to ${url.host} failed`);
  }
}

/** `egressFetch` for a running tool: a refused or failed request ends the run as `egress_<code>`. */
export async function toolEgressFetch(request: EgressRequest, allowlist: Allowlist): Promise<EgressResponse> {
  try {
    return await egressFetch(request, allowlist);
  } catch (error) {
    if (error instanceof EgressError) throw new ToolRunError(`egress_${error.code}`, error.message);
    throw error;
  }
}

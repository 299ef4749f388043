import { createHmac } from 'node:crypto';
import type { ToolImplementation } from '../../db/schema/tools.js';
import { ToolRunError } from './builtins/types.js';
import { FRAMING_HEADERS, toolEgressFetch, type Allowlist } from './egress.js';
import { scrubSecret } from './secret-scrub.js';

export const SIGNATURE_HEADER = 'X-CDSA-Signature';

/** Static headers a webhook tool may not set: framing, and the headers this service owns. */
const RESERVED_WEBHOOK_HEADERS = new Set([...FRAMING_HEADERS, 'content-type', SIGNATURE_HEADER.toLowerCase()]);

export function isReservedWebhookHeader(name: string): boolean {
  return RESERVED_WEBHOOK_HEADERS.has(name.toLowerCase());
}

/** `sha256=<hex HMAC-SHA256 of the exact body bytes>`, as the receiver recomputes it. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

export interface WebhookCall {
  toolName: string;
  args: Record<string, unknown>;
  executionId: string;
  implementation: ToolImplementation;
  allowlist: Allowlist;
  signal: AbortSignal;
  useSecret(name: string): Promise<string>;
}

/**
 * POSTs `{tool, args, execution_id}` to the tool's URL, signed when the tool names a vault secret. The host is
 * checked against the allowlist now, at call time; a redirect is a failure (never followed). The answer must be a
 * 2xx with a JSON body; the caller validates it against the tool's output schema.
 */
export async function callWebhook(call: WebhookCall): Promise<unknown> {
  const url = call.implementation.url;
  if (!url) throw new ToolRunError('webhook_misconfigured', 'the tool has no URL');
  const body = JSON.stringify({ tool: call.toolName, args: call.args, execution_id: call.executionId });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(call.implementation.headers ?? {})) {
    if (!isReservedWebhookHeader(name)) headers[name.toLowerCase()] = value;
  }
  headers['content-type'] = 'application/json';
  headers['x-cdsa-execution-id'] = call.executionId;
  let secret: string | undefined;
  if (call.implementation.secret_name) {
    secret = await call.useSecret(call.implementation.secret_name);
    headers[SIGNATURE_HEADER.toLowerCase()] = webhookSignature(secret, body);
  }

  const response = await toolEgressFetch(
    {
      method: 'POST',
      url,
      headers,
      body,
      timeoutMs: call.implementation.timeout_ms,
      maxResponseBytes: call.implementation.max_response_bytes,
      signal: call.signal,
    },
    call.allowlist,
  );
  if (response.status >= 300 && response.status < 400) {
    throw new ToolRunError('webhook_redirect', `the webhook answered with a redirect (HTTP ${response.status}); redirects are not followed`);
  }
  if (response.status < 200 || response.status >= 300) {
    throw new ToolRunError('webhook_status', `the webhook answered HTTP ${response.status}`);
  }
  const text = scrubSecret(response.body, secret);
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ToolRunError('webhook_invalid_response', 'the webhook answered with a body that is not JSON');
  }
}

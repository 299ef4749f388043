import { APICallError } from '@ai-sdk/provider';
import { UpstreamError, ValidationError } from '../../../lib/errors.js';
import type { ProviderName } from './model-id.js';

/**
 * Errors of the provider layer. Their messages go to clients and logs, so they are built from sanitized text only:
 * configured API keys and anything that looks like a key are masked, and nothing of the request (prompt, headers)
 * is attached as a cause.
 */

export type LlmProviderErrorCode = 'provider_unavailable' | 'provider_error' | 'provider_timeout' | 'invalid_tool_call';

export abstract class LlmProviderError extends UpstreamError {
  abstract readonly code: LlmProviderErrorCode;
  constructor(
    readonly provider: ProviderName,
    message: string,
    unavailable: boolean,
  ) {
    super(provider, message, unavailable);
  }
}

/** The provider could not be reached, or the connection broke before the answer was complete. */
export class ProviderUnavailableError extends LlmProviderError {
  readonly code = 'provider_unavailable';
  constructor(provider: ProviderName, reason: string) {
    super(provider, `LLM provider ${provider} is unavailable: ${reason}`, true);
  }
}

/** The provider answered with an error (HTTP status or an error event inside the stream). */
export class ProviderRequestError extends LlmProviderError {
  readonly code = 'provider_error';
  constructor(
    provider: ProviderName,
    readonly upstreamStatus: number | null,
    reason: string,
  ) {
    super(
      provider,
      upstreamStatus === null
        ? `LLM provider ${provider} failed: ${reason}`
        : `LLM provider ${provider} answered ${upstreamStatus}: ${reason}`,
      false,
    );
  }
}

export type TimeoutPhase = 'first_token' | 'stall';

/** Nothing arrived within the timeout: before the first chunk, or between two chunks. */
export class ProviderTimeoutError extends LlmProviderError {
  readonly code = 'provider_timeout';
  constructor(
    provider: ProviderName,
    readonly phase: TimeoutPhase,
    readonly timeoutMs: number,
  ) {
    super(
      provider,
      phase === 'first_token'
        ? `LLM provider ${provider} sent nothing within ${timeoutMs} ms`
        : `LLM provider ${provider} stalled for ${timeoutMs} ms mid-response`,
      true,
    );
  }
}

/** The model proposed a call to a tool it was not offered, or with arguments that are not a JSON object. */
export class InvalidToolCallError extends LlmProviderError {
  readonly code = 'invalid_tool_call';
  constructor(
    provider: ProviderName,
    readonly toolName: string,
    reason: string,
  ) {
    const tool = toolName.slice(0, 100);
    super(provider, `LLM provider ${provider} proposed an invalid call to tool "${tool}": ${reason}`, false);
  }
}

/** A model of a provider that has no configuration was asked for. */
export class ProviderNotConfiguredError extends ValidationError {
  constructor(readonly provider: ProviderName) {
    super(`LLM provider ${provider} is not configured`);
  }
}

const MAX_REASON_LENGTH = 300;
// Well-known key shapes (OpenAI, Anthropic, Google, bearer tokens), even when partly masked by the upstream.
const KEY_LIKE = /\b(?:sk-[A-Za-z0-9_*-]{6,}|AIza[A-Za-z0-9_*-]{10,}|Bearer\s+[A-Za-z0-9._~+/*=-]{8,})/g;

/** Mask secrets and key-like tokens and bound the length of a message before it leaves this layer. */
export function sanitizeMessage(message: string, secrets: readonly string[]): string {
  let text = message;
  for (const secret of secrets) {
    if (secret.length >= 4) text = text.split(secret).join('[REDACTED]');
  }
  text = text.replace(KEY_LIKE, '[REDACTED]').replace(/\s+/g, ' ').trim();
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH)}…` : text;
}

/** Translate whatever the AI SDK or the network threw into one of this layer's errors. */
export function toProviderError(provider: ProviderName, error: unknown, secrets: readonly string[]): LlmProviderError {
  if (error instanceof LlmProviderError) return error;
  // Checked before the status: a body that breaks after a 200 arrives as an APICallError with status 200.
  if (isConnectionLoss(error)) {
    return new ProviderUnavailableError(provider, 'the connection closed before the response was complete');
  }
  if (APICallError.isInstance(error)) {
    if (error.statusCode === undefined) {
      return new ProviderUnavailableError(provider, sanitizeMessage(networkReason(error), secrets));
    }
    // Ollama's `{"error": "..."}` does not fit the SDK's error schema, which then reports only the status text.
    const reason = upstreamErrorText(error.responseBody) ?? error.message;
    return new ProviderRequestError(provider, error.statusCode, sanitizeMessage(reason, secrets));
  }
  return new ProviderRequestError(provider, null, sanitizeMessage(describe(error), secrets));
}

function networkReason(error: APICallError): string {
  const cause = error.cause;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
  return code ? `cannot connect (${code})` : error.message;
}

const CONNECTION_LOSS_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * undici reports a connection that broke mid-body as `TypeError: terminated` caused by `SocketError: other side
 * closed`; the SDK may wrap that again. Walk the cause chain.
 */
function isConnectionLoss(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    if (current.message === 'terminated' || current.name === 'SocketError') return true;
    if ('code' in current && typeof current.code === 'string' && CONNECTION_LOSS_CODES.has(current.code)) return true;
    current = current.cause;
  }
  return false;
}

/** Error values inside streams are sometimes plain objects (`{ message }`) or strings rather than Errors. */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string') {
    return error.message;
  }
  return 'unexpected error';
}

/** The human part of an error body in any of the providers' formats (`{error: string}`, `{error: {message}}`). */
export function upstreamErrorText(body: string | undefined): string | undefined {
  if (body === undefined || body === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return undefined;
    const error = parsed.error;
    if (typeof error === 'string') return error;
    if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string') {
      return error.message;
    }
  } catch {
    // Not JSON (an HTML error page from a proxy, say): the caller falls back to its own description.
  }
  return undefined;
}

import type { FastifyError } from 'fastify';
import { asDependencyError } from '../../lib/dependency-errors.js';
import {
  AppError,
  ForbiddenError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UnauthorizedError,
  ValidationError,
  type FieldError,
} from '../../lib/errors.js';
import { RoutingRefusedError } from '../chat/knowledge.js';
import { ModelAccessDeniedError, TokenBudgetExceededError, UnknownModelError } from '../llm/llm.service.js';
import { LlmProviderError } from '../llm/providers/index.js';

/** OpenAI's error object: `{"error": {message, type, param, code}}` (what OpenAI clients parse into their typed errors). */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface OpenAiError {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
  /** Unexpected: the cause goes to the log, never to the client. */
  unexpected?: true;
}

/** `/messages/0/content` → `messages[0].content`, the way OpenAI names a parameter. */
export function paramOf(pointer: string | undefined): string | null {
  if (!pointer || pointer === '/') return null;
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((out, part) => (/^\d+$/.test(part) ? `${out}[${part}]` : out === '' ? part : `${out}.${part}`), '');
}

function body(message: string, type: string, code: string | null, param: string | null = null): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

function fieldsMessage(message: string, errors: readonly FieldError[]): string {
  if (errors.length === 0) return message;
  return `${message}: ${errors.map((e) => `${paramOf(e.pointer) ?? 'body'} ${e.detail}`).join('; ')}`;
}

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** The one schema problem a client is told about (OpenAI names one `param`), with every problem in the message. */
function validationError(issues: AjvIssue[], context: string | undefined): OpenAiError {
  const described = issues.map((issue) => {
    let pointer = issue.instancePath;
    let detail = issue.message ?? 'is invalid';
    if (issue.keyword === 'required' && typeof issue.params.missingProperty === 'string') {
      pointer = `${pointer}/${issue.params.missingProperty}`;
      detail = 'is required';
    } else if (issue.keyword === 'additionalProperties' && typeof issue.params.additionalProperty === 'string') {
      pointer = `${pointer}/${issue.params.additionalProperty}`;
      detail = 'is not an allowed field';
    }
    return { pointer, detail };
  });
  // anyOf reports each branch; the most specific (deepest) problem names the parameter.
  const first = [...described].sort((a, b) => b.pointer.length - a.pointer.length)[0];
  const param = paramOf(first?.pointer);
  const where = context && context !== 'body' ? `${context} ` : '';
  const unique = [...new Set(described.map((d) => `${where}${paramOf(d.pointer) ?? 'body'} ${d.detail}`))].slice(0, 5);
  return { status: 400, body: body(`Invalid request: ${unique.join('; ')}`, 'invalid_request_error', 'invalid_request', param), headers: {} };
}

const FASTIFY_CODES: Record<string, { status: number; message: string; code: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, message: 'Unsupported content type; send application/json', code: 'unsupported_media_type' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than the limit', code: 'request_too_large' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, message: 'We could not parse the JSON body of your request', code: 'invalid_json' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, message: 'Empty body with content-type application/json', code: 'invalid_json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, message: 'Content-Length does not match the body', code: 'invalid_request' },
};

/**
 * Any error of a /v1 request in OpenAI's shape and status codes: 400 for every invalid request (OpenAI has no 422),
 * 401 for a missing or unusable key, 403 for a key without the scope or a request the policy refuses, 404 for an
 * unknown model (or one the caller's role may not use, as OpenAI answers for a model one has no access to), 429 for
 * rate limits and the daily token budget, 5xx for the providers and dependencies.
 */
export function toOpenAiError(error: unknown): OpenAiError {
  if (error instanceof AppError) {
    const headers = { ...error.headers };
    const message = error.message;
    if (error instanceof UnknownModelError || error instanceof ModelAccessDeniedError) {
      return {
        status: 404,
        body: body(`The model \`${error.modelId}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model'),
        headers,
      };
    }
    if (error instanceof RoutingRefusedError) return { status: 403, body: body(message, 'permission_error', 'sensitivity_routing_refused'), headers };
    if (error instanceof UnauthorizedError) return { status: 401, body: body(message, 'invalid_request_error', 'invalid_api_key'), headers };
    if (error instanceof ForbiddenError) return { status: 403, body: body(message, 'permission_error', 'permission_denied'), headers };
    if (error instanceof NotFoundError) return { status: 404, body: body(message, 'invalid_request_error', 'not_found'), headers };
    if (error instanceof TokenBudgetExceededError) return { status: 429, body: body(message, 'insufficient_quota', 'insufficient_quota'), headers };
    if (error instanceof RateLimitedError) return { status: 429, body: body(message, 'rate_limit_error', 'rate_limit_exceeded'), headers };
    if (error instanceof PayloadTooLargeError) return { status: 413, body: body(message, 'invalid_request_error', 'request_too_large'), headers };
    if (error instanceof LlmProviderError) return { status: error.status, body: body(message, 'api_error', error.code), headers };
    const fields = (error.extensions.errors as FieldError[] | undefined) ?? (error instanceof ValidationError ? error.errors : []);
    if (error.status === 400 || error.status === 422) {
      const code = /too long for the model/.test(message) ? 'context_length_exceeded' : 'invalid_request';
      return { status: 400, body: body(fieldsMessage(message, fields), 'invalid_request_error', code, paramOf(fields[0]?.pointer)), headers };
    }
    if (error.status === 409) return { status: 409, body: body(message, 'invalid_request_error', 'conflict'), headers };
    if (error.status >= 500) return { status: error.status, body: body(message, 'api_error', error.status === 503 ? 'service_unavailable' : 'upstream_error'), headers };
    return { status: error.status, body: body(message, 'invalid_request_error', null), headers };
  }
  const fastifyError = error as FastifyError;
  if (fastifyError?.validation) return validationError(fastifyError.validation as AjvIssue[], fastifyError.validationContext);
  const known = fastifyError?.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known) return { status: known.status, body: body(known.message, 'invalid_request_error', known.code), headers: {} };
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return { status: 400, body: body('We could not parse the JSON body of your request', 'invalid_request_error', 'invalid_json'), headers: {} };
  }
  const status = fastifyError?.statusCode ?? 500;
  if (status === 429) return { status, body: body('Rate limit exceeded, retry later', 'rate_limit_error', 'rate_limit_exceeded'), headers: {} };
  if (status >= 400 && status < 500) return { status, body: body(fastifyError.message, 'invalid_request_error', null), headers: {} };
  const unavailable = asDependencyError(error);
  if (unavailable) return { status: unavailable.status, body: body(unavailable.message, 'api_error', 'service_unavailable'), headers: { ...unavailable.headers } };
  return { status: 500, body: body('The server had an error while processing your request', 'api_error', 'internal_error'), headers: {}, unexpected: true };
}

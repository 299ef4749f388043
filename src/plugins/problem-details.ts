import { STATUS_CODES } from 'node:http';
import fp from 'fastify-plugin';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { asDependencyError, dependencyFailureMessage } from '../lib/dependency-errors.js';
import { AppError, type FieldError } from '../lib/errors.js';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  request_id: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

function slug(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/(^-|-$)/g, '');
}

export function problem(request: FastifyRequest, status: number, detail: string, extensions: Record<string, unknown> = {}, title?: string): ProblemDetails {
  const resolvedTitle = title ?? STATUS_CODES[status] ?? 'Error';
  // Extensions first: the standard members always win.
  return {
    ...extensions,
    type: `urn:cdsa:problem:${slug(resolvedTitle)}`,
    title: resolvedTitle,
    status,
    detail,
    // The path only: query strings may carry tickets or cursors.
    instance: request.url.split('?')[0] ?? request.url,
    request_id: String(request.id),
  };
}

export function sendProblem(reply: FastifyReply, body: ProblemDetails): FastifyReply {
  return reply.code(body.status).type('application/problem+json').send(body);
}

interface AjvIssue {
  instancePath: string;
  schemaPath?: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** The values a `const` or `enum` issue allows; undefined for any other keyword. */
function allowedValues(issue: AjvIssue): unknown[] | undefined {
  if (issue.keyword === 'const') return [issue.params.allowedValue];
  if (issue.keyword === 'enum' && Array.isArray(issue.params.allowedValues)) return issue.params.allowedValues;
  return undefined;
}

/**
 * A union of literals (TypeBox's `Union([Literal('A'), Literal('B')])`, an `anyOf` of consts) fails with one
 * "must be equal to constant" per branch and an "anyOf" issue: those become one issue naming the allowed values.
 */
function collapseChoices(issues: AjvIssue[]): AjvIssue[] {
  const merged = new Map<AjvIssue, AjvIssue>();
  const branchesOfMerged = new Set<AjvIssue>();
  for (const issue of issues) {
    if (issue.keyword !== 'anyOf' || !issue.schemaPath) continue;
    const prefix = `${issue.schemaPath}/`;
    const branches = issues.filter((other) => other.instancePath === issue.instancePath && other.schemaPath?.startsWith(prefix));
    const values = branches.map(allowedValues);
    if (branches.length === 0 || values.some((value) => value === undefined)) continue;
    for (const branch of branches) branchesOfMerged.add(branch);
    merged.set(issue, { ...issue, keyword: 'enum', params: { allowedValues: values.flat() } });
  }
  return issues.filter((issue) => !branchesOfMerged.has(issue)).map((issue) => merged.get(issue) ?? issue);
}

function describe(issue: AjvIssue): string {
  const values = allowedValues(issue);
  if (values) return `must be one of ${values.map((value) => (typeof value === 'string' ? value : JSON.stringify(value))).join(', ')}`;
  if (issue.keyword === 'minLength' && typeof issue.params.limit === 'number') return `must be at least ${issue.params.limit} characters long`;
  if (issue.keyword === 'maxLength' && typeof issue.params.limit === 'number') return `must be at most ${issue.params.limit} characters long`;
  return issue.message ?? 'is invalid';
}

/** Ajv issues → JSON pointers into the request body/query/params, e.g. `/password` or `/role` for a forbidden field. */
export function validationErrors(issues: AjvIssue[], context: string | undefined): FieldError[] {
  return collapseChoices(issues).map((issue) => {
    let pointer = issue.instancePath || '';
    let detail = describe(issue);
    if (issue.keyword === 'additionalProperties' && typeof issue.params.additionalProperty === 'string') {
      pointer = `${pointer}/${issue.params.additionalProperty}`;
      detail = 'is not an allowed field';
    } else if (issue.keyword === 'required' && typeof issue.params.missingProperty === 'string') {
      pointer = `${pointer}/${issue.params.missingProperty}`;
      detail = 'is required';
    }
    return { pointer: pointer === '' ? '/' : pointer, detail: context && context !== 'body' ? `${context}: ${detail}` : detail };
  });
}

const FASTIFY_CODE_STATUS: Record<string, { status: number; detail: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, detail: 'Unsupported content type; send application/json' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, detail: 'Request body is larger than the limit' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, detail: 'Malformed JSON in request body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, detail: 'Empty body with content-type application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, detail: 'Content-Length does not match the body' },
};

/**
 * The one place errors become HTTP responses (RFC 9457). An unreachable database or Redis is a 503 naming it; other
 * unknown errors are a generic 500, the cause only logged.
 */
export const problemDetailsPlugin = fp(
  async (app) => {
    app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
      if (error instanceof AppError) {
        for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
        if (error.status >= 500) request.log.warn({ err: error }, 'dependency failure');
        return sendProblem(reply, problem(request, error.status, error.message, error.extensions, error.title));
      }
      const fastifyError = error as FastifyError;
      if (fastifyError.validation) {
        const errors = validationErrors(fastifyError.validation as AjvIssue[], fastifyError.validationContext);
        return sendProblem(reply, problem(request, 422, 'The request is invalid', { errors }, 'Unprocessable Content'));
      }
      const known = fastifyError.code ? FASTIFY_CODE_STATUS[fastifyError.code] : undefined;
      if (known) return sendProblem(reply, problem(request, known.status, known.detail));
      if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
        return sendProblem(reply, problem(request, 400, 'Malformed JSON in request body'));
      }
      const status = fastifyError.statusCode ?? 500;
      if (status === 429) {
        return sendProblem(reply, problem(request, 429, 'Rate limit exceeded, retry later'));
      }
      if (status >= 400 && status < 500) {
        return sendProblem(reply, problem(request, status, fastifyError.message));
      }
      // A dependency that went away (database restart, Redis outage) is not a bug: 503 naming it, with Retry-After.
      const unavailable = asDependencyError(error);
      if (unavailable) {
        for (const [name, value] of Object.entries(unavailable.headers)) reply.header(name, value);
        request.log.warn({ dependency: unavailable.dependency, err: dependencyFailureMessage(error) }, 'dependency unavailable');
        return sendProblem(reply, problem(request, unavailable.status, unavailable.message, unavailable.extensions, unavailable.title));
      }
      request.log.error({ err: error }, 'unhandled error');
      return sendProblem(reply, problem(request, 500, 'An unexpected error occurred'));
    });

    app.setNotFoundHandler((request, reply) =>
      sendProblem(reply, problem(request, 404, `No route ${request.method} ${request.url.split('?')[0]}`)),
    );
  },
  { name: 'problem-details' },
);

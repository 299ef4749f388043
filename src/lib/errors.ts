/**
 * The one family of domain errors. Services throw these; exactly one error handler (plugins/problem-details.ts)
 * turns them into RFC 9457 problem details. Messages are shown to clients, so they never hold secrets.
 */
export interface FieldError {
  /** JSON pointer into the request, e.g. `/password`. */
  pointer: string;
  detail: string;
}

export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  /** Extra members of the problem object (e.g. `errors`). */
  readonly extensions: Record<string, unknown> = {};
  /** Response headers the problem needs (e.g. Retry-After). */
  readonly headers: Record<string, string> = {};

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends AppError {
  readonly status = 400;
  readonly title = 'Bad Request';
  constructor(message: string, errors: FieldError[] = []) {
    super(message);
    if (errors.length > 0) this.extensions.errors = errors;
  }
}

export class UnauthorizedError extends AppError {
  readonly status = 401;
  readonly title = 'Unauthorized';
  constructor(message = 'Authentication required') {
    super(message);
    this.headers['WWW-Authenticate'] = 'Bearer';
  }
}

export class ForbiddenError extends AppError {
  readonly status = 403;
  readonly title = 'Forbidden';
  constructor(message = 'You do not have permission to do this') {
    super(message);
  }
}

export class NotFoundError extends AppError {
  readonly status = 404;
  readonly title = 'Not Found';
  constructor(what = 'Resource') {
    super(`${what} not found`);
  }
}

export class ConflictError extends AppError {
  readonly status = 409;
  readonly title = 'Conflict';
}

export class ValidationError extends AppError {
  readonly status = 422;
  readonly title = 'Unprocessable Content';
  constructor(
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
    this.extensions.errors = errors;
  }
}

export class RateLimitedError extends AppError {
  readonly status = 429;
  readonly title = 'Too Many Requests';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterSeconds)));
  }
}

/** A dependency (LLM provider, Redis, webhook) failed; `dependency` names it for the client. */
export class UpstreamError extends AppError {
  readonly status: number;
  readonly title: string;
  constructor(
    readonly dependency: string,
    message: string,
    unavailable = false,
  ) {
    super(message);
    this.status = unavailable ? 503 : 502;
    this.title = unavailable ? 'Service Unavailable' : 'Bad Gateway';
    this.extensions.dependency = dependency;
  }
}

export class AcceptedPendingError extends AppError {
  readonly status = 202;
  readonly title = 'Accepted';
}

/** The database or Redis is unreachable: 503 naming it, with Retry-After (see lib/dependency-errors.ts). */
export class DependencyUnavailableError extends UpstreamError {
  constructor(dependency: string, message: string, retryAfterSeconds: number) {
    super(dependency, message, true);
    this.headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterSeconds)));
  }
}

export class PayloadTooLargeError extends AppError {
  readonly status = 413;
  readonly title = 'Content Too Large';
}

export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415;
  readonly title = 'Unsupported Media Type';
}

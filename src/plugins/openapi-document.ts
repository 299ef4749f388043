import { STATUS_CODES } from 'node:http';
import type { Permission } from '../modules/auth/permissions.js';
import { PERMISSION_MIN_ROLE } from '../modules/auth/permissions.js';

/** What the document cannot tell by itself about a route: recorded from each route's config as it is registered. */
export interface RouteDocMeta {
  public: boolean;
  requires: Permission | undefined;
}

type Json = Record<string, unknown>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** The problem responses every operation may answer, shared as components so each operation only refers to them. */
const PROBLEMS: Record<number, { name: string; when: string; example: { title: string; detail: string; errors?: unknown[] } }> = {
  400: { name: 'BadRequest', when: 'The body is not valid JSON, or the request is malformed.', example: { title: 'Bad Request', detail: 'Body is not valid JSON' } },
  401: { name: 'Unauthorized', when: 'No valid access token.', example: { title: 'Unauthorized', detail: 'Authentication required' } },
  403: {
    name: 'Forbidden',
    when: 'The caller’s role lacks the permission this operation needs.',
    example: { title: 'Forbidden', detail: 'This action needs the users:manage permission' },
  },
  404: {
    name: 'NotFound',
    when: 'No such object, or it belongs to somebody else (indistinguishable on purpose).',
    example: { title: 'Not Found', detail: 'Approval not found' },
  },
  422: {
    name: 'ValidationFailed',
    when: 'The body, query or path parameters do not match the schema; `errors[]` has one JSON pointer per problem.',
    example: {
      title: 'Unprocessable Content',
      detail: 'Request validation failed',
      errors: [{ pointer: '/decision', detail: 'must be one of APPROVED, REJECTED' }],
    },
  },
  429: {
    name: 'RateLimited',
    when: 'Too many requests from this client; `Retry-After` says when to try again.',
    example: { title: 'Too Many Requests', detail: 'Rate limit exceeded: 100 requests per 1 minute' },
  },
};

const PROBLEM_SCHEMA = {
  type: 'object',
  description: 'RFC 9457 problem details.',
  required: ['type', 'title', 'status', 'detail', 'instance', 'request_id'],
  properties: {
    type: { type: 'string', description: 'A URN naming the kind of problem, e.g. `urn:cdsa:problem:not-found`.' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string', description: 'The request path.' },
    request_id: { type: 'string', description: 'Also sent as `X-Request-Id`; quote it when reporting a problem.' },
    errors: {
      type: 'array',
      description: 'On 422: one entry per invalid field.',
      items: {
        type: 'object',
        required: ['pointer', 'detail'],
        properties: { pointer: { type: 'string', description: 'JSON pointer into the request, e.g. `/password`.' }, detail: { type: 'string' } },
      },
    },
  },
};

function slug(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/(^-|-$)/g, '');
}

/** `GET /api/v1/users/{id}/sessions` → `getUsersByIdSessions`: stable, unique (one operation per method and path). */
export function operationIdFor(method: string, path: string): string {
  const words = path
    .split('/')
    .filter((segment) => segment !== '' && segment !== 'api' && segment !== 'v1')
    .map((segment) => {
      const param = /^\{(.+)\}$/.exec(segment);
      return param ? `by-${param[1]}` : segment;
    })
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  const named = words.length > 0 ? words : ['root'];
  return [method.toLowerCase(), ...named.map((word) => word[0]!.toUpperCase() + word.slice(1))].join('');
}

/**
 * Completes the document @fastify/swagger generates from the routes' schemas, in one place rather than in every route:
 * an operationId for each operation (unless the route names one), the problem responses it can answer (from what
 * the route declares: public or not, a permission, path parameters, a body), real descriptions instead of "Default
 * Response", the permission in the description, `servers` and the license.
 */
export function completeOpenApiDocument(document: Json, meta: ReadonlyMap<string, RouteDocMeta>): Json {
  const paths = (document.paths ?? {}) as Record<string, Record<string, Json>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const route = meta.get(`${method.toUpperCase()} ${path}`);
      operation.operationId ??= operationIdFor(method, path);
      const responses = (operation.responses ??= {}) as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        if (response.description === 'Default Response' || !response.description) {
          response.description = STATUS_CODES[Number(status)] ?? 'Response';
        }
      }
      // The OpenAI-compatible /v1 declares its own error responses (OpenAI's shape, not problem details).
      if (path.startsWith('/v1/')) continue;
      const parameters = (operation.parameters ?? []) as Json[];
      const hasPathParams = parameters.some((parameter) => parameter.in === 'path');
      const validates = parameters.length > 0 || operation.requestBody !== undefined;
      const statuses = new Set<number>([429]);
      if (operation.requestBody !== undefined) statuses.add(400);
      if (!route?.public) statuses.add(401);
      if (route?.requires) statuses.add(403);
      if (hasPathParams) statuses.add(404);
      if (validates) statuses.add(422);
      for (const status of [...statuses].sort()) {
        responses[String(status)] ??= { $ref: `#/components/responses/${PROBLEMS[status]!.name}` };
      }
      if (route?.requires) {
        const note = `Needs the \`${route.requires}\` permission (${PERMISSION_MIN_ROLE[route.requires]} or above).`;
        operation.description = operation.description ? `${String(operation.description)}\n\n${note}` : note;
      }
    }
  }
  const components = (document.components ??= {}) as Json;
  const schemas = (components.schemas ??= {}) as Json;
  schemas.ProblemDetails = PROBLEM_SCHEMA;
  const responses = (components.responses ??= {}) as Json;
  for (const [status, problem] of Object.entries(PROBLEMS)) {
    responses[problem.name] = {
      description: problem.when,
      content: {
        'application/problem+json': {
          schema: { $ref: '#/components/schemas/ProblemDetails' },
          example: {
            type: `urn:cdsa:problem:${slug(problem.example.title)}`,
            status: Number(status),
            instance: '/api/v1/…',
            request_id: '5f0c6c1e-8a9b-4d2f-9a57-0f1f3c2b9d11',
            ...problem.example,
          },
        },
      },
    };
  }
  document.servers = [{ url: 'http://127.0.0.1:8000', description: 'The default local address (HOST and PORT)' }];
  const info = (document.info ??= {}) as Json;
  info.license = { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' };
  return document;
}

import { STATUS_CODES } from 'node:http';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ForbiddenError } from '../lib/errors.js';
import { asDependencyError } from '../lib/dependency-errors.js';
import { createCdsaMcpServer, type CdsaMcpServerDeps } from '../modules/mcp/mcp-server.js';
import { authenticatedSubtree } from '../plugins/auth.js';

/** JSON only, never cached: the same as the API's baseline, owned here explicitly. */
export const MCP_HEADERS = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cache-control': 'no-store',
} as const;

export const MCP_PATH = '/mcp';

/** A JSON-RPC error object with no request id: what the MCP transport answers for a request it refuses as a whole. */
function rpcError(code: number, message: string) {
  return { jsonrpc: '2.0' as const, error: { code, message }, id: null };
}

/** Refusals of a request as a whole use -32000, as the SDK's transport does; unparsable JSON is a parse error. */
function sendRpcError(reply: FastifyReply, status: number, message: string, code = -32000): FastifyReply {
  return reply.code(status).type('application/json').send(rpcError(code, message));
}

const FASTIFY_STATUS: Record<string, { status: number; message: string; code?: number }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, message: 'Unsupported Media Type: Content-Type must be application/json' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, message: 'Payload Too Large: the request body is larger than MCP_BODY_LIMIT_BYTES' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, message: 'Parse error: Invalid JSON', code: ErrorCode.ParseError },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, message: 'Parse error: empty body', code: ErrorCode.ParseError },
};

function normalizedOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}

export interface McpSubtreeOptions {
  /** The MCP server's dependencies, resolved when the first request arrives (the modules are all registered then). */
  server: () => CdsaMcpServerDeps;
}

/**
 * `POST /mcp`: CDSA as an MCP server over Streamable HTTP (CONTRACT §10), a subtree of its own that owns its
 * authentication (an API key with the `mcp` scope, acting as its user with that user's role and clearance at this
 * request), its `Origin` check, its body limit, its headers and its error shape (JSON-RPC error objects with the
 * HTTP status the transport specification asks for, not problem details).
 *
 * Stateless mode (no `Mcp-Session-Id`): every POST gets a fresh SDK server and transport, lives for that request only
 * and answers with one JSON body. Nothing of a client is held in memory, so any instance behind a load balancer can
 * answer any request, a restart loses nothing, and role, clearance or a revoked key count from the next request. What
 * must outlive a request — a gated call waiting for its approval — lives in the database, bound to the API key, not
 * to a protocol session. CDSA sends no server-initiated messages, so there is no GET stream to keep: GET and DELETE
 * answer 405, as the specification allows a server without one.
 *
 * The transport is the SDK's web-standard core of `StreamableHTTPServerTransport` (the Node class is a wrapper
 * around it): it takes the body Fastify already parsed and returns a `Response`, so the reply stays Fastify's —
 * request id, security headers, logging and metrics as on every other route — instead of being written past it.
 */
export async function mcpSubtree(app: FastifyInstance, options: McpSubtreeOptions): Promise<void> {
  const allowedOrigins = new Set(app.config.mcpServer.allowedOrigins.map(normalizedOrigin));

  app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
    if (error instanceof AppError) {
      for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
      if (error.status >= 500) request.log.warn({ err: error }, 'MCP request failed on a dependency');
      return sendRpcError(reply, error.status, error.message);
    }
    const known = error.code ? FASTIFY_STATUS[error.code] : undefined;
    if (known) return sendRpcError(reply, known.status, known.message, known.code);
    const status = error.statusCode ?? 500;
    if (error instanceof SyntaxError && status === 400) return sendRpcError(reply, 400, 'Parse error: Invalid JSON', ErrorCode.ParseError);
    if (status === 429) return sendRpcError(reply, 429, 'Rate limit exceeded, retry later');
    if (status >= 400 && status < 500) return sendRpcError(reply, status, `${STATUS_CODES[status] ?? 'Bad Request'}: ${error.message}`);
    const unavailable = asDependencyError(error);
    if (unavailable) {
      for (const [name, value] of Object.entries(unavailable.headers)) reply.header(name, value);
      return sendRpcError(reply, unavailable.status, unavailable.message);
    }
    request.log.error({ err: error }, 'unhandled error in the MCP server');
    return sendRpcError(reply, 500, 'Internal error');
  });

  // Before the key is even looked at: a browser page from an origin not allowed must not reach the server (DNS
  // rebinding, cross-site requests). Clients that are not browsers send no Origin and pass to authentication.
  app.addHook('onRequest', async (request, reply) => {
    void reply.headers(MCP_HEADERS);
    const origin = request.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(normalizedOrigin(origin))) {
      throw new ForbiddenError(`Origin ${origin.slice(0, 200)} is not allowed (MCP_ALLOWED_ORIGINS)`);
    }
  });

  const routes = async (subtree: FastifyInstance) => {
    subtree.post(
      MCP_PATH,
      {
        bodyLimit: app.config.mcpServer.bodyLimitBytes,
        // A JSON-RPC endpoint described by the MCP specification, not a REST resource: documented in the README.
        schema: { hide: true },
        config: { apiKeyScope: 'mcp' },
      },
      async (request, reply) => handlePost(request, reply, options.server()),
    );
    const notAllowed = async (_request: FastifyRequest, reply: FastifyReply) =>
      sendRpcError(reply.header('allow', 'POST'), 405, 'Method Not Allowed: this server is stateless and offers no GET stream or session to delete; send POST');
    subtree.get(MCP_PATH, { schema: { hide: true }, config: { apiKeyScope: 'mcp' } }, notAllowed);
    subtree.delete(MCP_PATH, { schema: { hide: true }, config: { apiKeyScope: 'mcp' } }, notAllowed);
  };

  await app.register(
    authenticatedSubtree({
      name: 'mcp',
      authenticate: app.apiKeys.authenticator('mcp'),
      headers: MCP_HEADERS,
      routes: [routes],
    }),
  );
}

async function handlePost(request: FastifyRequest, reply: FastifyReply, deps: CdsaMcpServerDeps): Promise<FastifyReply> {
  const actor = request.actor;
  const apiKeyId = actor?.apiKeyId;
  if (!actor || apiKeyId === undefined) throw new ForbiddenError('The MCP server is reached with an API key');
  const server = createCdsaMcpServer(deps, { actor, apiKeyId, context: request.requestContext });
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  try {
    await server.connect(transport);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value)) headers.set(name, value.join(', '));
    }
    const response = await transport.handleRequest(new Request(`http://localhost${MCP_PATH}`, { method: 'POST', headers }), { parsedBody: request.body });
    reply.code(response.status);
    response.headers.forEach((value, name) => {
      if (name !== 'content-length') void reply.header(name, value);
    });
    const body = await response.text();
    return reply.send(body.length > 0 ? body : undefined);
  } finally {
    await server.close();
  }
}

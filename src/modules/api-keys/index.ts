import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import type { ApiKeyScope } from '../../db/schema/api-keys.js';
import { UnauthorizedError } from '../../lib/errors.js';
import type { RequestAuthenticator } from '../../plugins/auth.js';
import { createApiKeysRepository } from './api-keys.repository.js';
import { apiKeysRoutes } from './api-keys.routes.js';
import { createApiKeysService, type ApiKeyPrincipal, type ApiKeysService } from './api-keys.service.js';

export type { ApiKeyPrincipal, ApiKeysService } from './api-keys.service.js';
export type { ApiKeyScope } from '../../db/schema/api-keys.js';

/** What other subtrees (`/v1`, `/mcp`) use to accept API keys. */
export interface ApiKeyAuth {
  service: ApiKeysService;
  /**
   * The request's `Authorization: Bearer cdsa_...` key, which must have `scope`: 401 when it is missing or unusable,
   * 403 without the scope. Sets `request.actor` (with `apiKeyId`, which every audit event of the request then carries).
   */
  authenticate(request: FastifyRequest, scope: ApiKeyScope | readonly ApiKeyScope[]): Promise<ApiKeyPrincipal>;
  /**
   * A subtree's authenticator (`authenticatedSubtree({ authenticate: app.apiKeys.authenticator('mcp') })`): the scope is
   * the route's `config.apiKeyScope`, else `scope`.
   */
  authenticator(scope: ApiKeyScope | readonly ApiKeyScope[]): RequestAuthenticator;
}

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeyAuth;
  }
  interface FastifyContextConfig {
    /** The API key scope a route of a key-authenticated subtree needs (one of them, for a list). */
    apiKeyScope?: ApiKeyScope | readonly ApiKeyScope[];
  }
}

const BEARER = /^Bearer +(\S+) *$/i;

/** API keys: the `/api/v1/api-keys` routes and the authenticator key-accepting subtrees use. */
export const apiKeysModule = fp(
  async (app) => {
    const service = createApiKeysService({
      db: app.infra.database.db,
      repository: createApiKeysRepository(),
      audit: app.audit,
      logger: app.log,
    });

    async function authenticate(request: FastifyRequest, scope: ApiKeyScope | readonly ApiKeyScope[]): Promise<ApiKeyPrincipal> {
      const header = request.headers.authorization;
      if (header === undefined) throw new UnauthorizedError('An API key is required: send Authorization: Bearer cdsa_...');
      const match = BEARER.exec(header);
      if (!match) throw new UnauthorizedError('Malformed Authorization header; expected "Bearer cdsa_..."');
      const principal = await service.authenticate(match[1]!, scope);
      request.actor = principal.actor;
      return principal;
    }

    app.decorate('apiKeys', {
      service,
      authenticate,
      authenticator: (scope) => async (request) => (await authenticate(request, request.routeOptions.config.apiKeyScope ?? scope)).actor,
    } satisfies ApiKeyAuth);

    app.apiV1.routes(apiKeysRoutes, { apiKeys: service });
  },
  { name: 'module-api-keys', dependencies: ['infra', 'auth', 'module-audit', 'module-identity'] },
);

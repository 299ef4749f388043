import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../lib/errors.js';
import { hasPermission, type Actor, type Permission, type RequestContext } from '../modules/auth/permissions.js';

/** Resolves the caller of a request from its credentials; provided by the identity module. */
export type RequestAuthenticator = (request: FastifyRequest) => Promise<Actor>;

/** How one route is protected, as declared in its `config`: the security tests walk this table. */
export interface RouteAccess {
  method: string;
  url: string;
  public: boolean;
  requires: Permission | undefined;
  acceptsStreamTicket: boolean;
  /** Names of the query parameters its schema declares (e.g. `cursor` on every list). */
  queryParameters: string[];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No credentials needed (login, register, health). */
    public?: boolean;
    /** The permission this route needs (CONTRACT §4); checked here, in one place. */
    requires?: Permission;
    /** A GET stream that a browser opens with `?ticket=` instead of a header. */
    acceptsStreamTicket?: boolean;
  }
  interface FastifyRequest {
    actor: Actor | null;
    requestContext: RequestContext;
  }
  interface FastifyInstance {
    setAuthenticator(authenticator: RequestAuthenticator): void;
    /** The authenticated actor of a request on a non-public route. */
    requireActor(request: FastifyRequest): Actor;
    /** Every route registered after this plugin, with its declared access (HEAD twins of GET routes left out). */
    routeAccessTable(): readonly RouteAccess[];
  }
}

/**
 * Authentication and function-level authorization for the API subtree. Routes are private unless marked public;
 * object-level checks (is this the caller's object?) belong to the services.
 */
export const authPlugin = fp(
  async (app) => {
    let authenticator: RequestAuthenticator = async () => {
      throw new UnauthorizedError();
    };
    app.decorate('setAuthenticator', (next: RequestAuthenticator) => {
      authenticator = next;
    });
    app.decorate('requireActor', (request: FastifyRequest) => {
      if (!request.actor) throw new UnauthorizedError();
      return request.actor;
    });
    const routeTable: RouteAccess[] = [];
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (method === 'HEAD') continue;
        routeTable.push({
          method,
          url: route.url,
          public: route.config?.public === true,
          requires: route.config?.requires,
          acceptsStreamTicket: route.config?.acceptsStreamTicket === true,
          queryParameters: Object.keys((route.schema?.querystring as { properties?: object } | undefined)?.properties ?? {}),
        });
      }
    });
    app.decorate('routeAccessTable', () => routeTable);
    app.decorateRequest('actor', null);
    app.decorateRequest('requestContext', {
      getter(this: FastifyRequest) {
        const agent = this.headers['user-agent'];
        return {
          ipAddress: this.ip ?? null,
          userAgent: typeof agent === 'string' ? agent.slice(0, 512) : null,
          requestId: String(this.id),
        };
      },
    });

    app.addHook('onRequest', async (request) => {
      const config = request.routeOptions.config;
      // Unknown routes (404) and public ones skip authentication.
      if (!request.routeOptions.url || config.public || !request.routeOptions.url.startsWith('/api/')) return;
      request.actor = await authenticator(request);
      if (config.requires && !hasPermission(request.actor.role, config.requires)) {
        throw new ForbiddenError(`This action needs the ${config.requires} permission`);
      }
    });
  },
  { name: 'auth' },
);

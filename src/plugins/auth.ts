import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../lib/errors.js';
import { MfaEnrollmentRequiredError, StepUpRequiredError, stepUpApplies, stepUpFresh } from '../modules/auth/mfa/step-up.js';
import { hasPermission, type Actor, type Permission, type RequestContext } from '../modules/auth/permissions.js';

/** Resolves the caller of a request from its credentials, or throws UnauthorizedError. */
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
  /** The authenticated subtree the route belongs to (`api-v1`); absent for public routes outside one. */
  subtree: string | undefined;
  /** Needs a recent second-factor verification (step-up). */
  stepUp: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No credentials needed (login, register, health). */
    public?: boolean;
    /** The permission this route needs (README, roles and permissions); checked by the route's subtree. */
    requires?: Permission;
    /** A GET stream that a browser opens with `?ticket=` instead of a header. */
    acceptsStreamTicket?: boolean;
    /** Set by the authenticated subtree that owns the route; never by the route itself. */
    authenticatedBy?: string;
    /** A sensitive action: needs a second-factor verification within MFA_STEP_UP_SECONDS (CONTRACT §4 "SSO and MFA"). */
    stepUp?: boolean;
    /** Reachable by a user whose role requires MFA before they have enrolled (enrolment itself, sign-out). */
    beforeMfaEnrollment?: boolean;
  }
  interface FastifyRequest {
    actor: Actor | null;
    requestContext: RequestContext;
  }
  interface FastifyInstance {
    /** The authenticated actor of a request on a non-public route. */
    requireActor(request: FastifyRequest): Actor;
    /**
     * For a route whose sensitivity depends on its input (e.g. a role change): the same step-up check as
     * `config.stepUp`, run by the handler. Throws 401 step-up-required when a recent verification is missing.
     */
    requireStepUp(request: FastifyRequest): Actor;
    /** Every route registered after this plugin, with its declared access (HEAD twins of GET routes left out). */
    routeAccessTable(): readonly RouteAccess[];
  }
}

interface RouteRecord {
  method: string;
  route: {
    url: string;
    config?: { public?: boolean; requires?: Permission; acceptsStreamTicket?: boolean; authenticatedBy?: string; stepUp?: boolean };
    schema?: { querystring?: unknown };
  };
}

/**
 * Request identity and the start-up rule that makes an unauthenticated route impossible by accident: every route must
 * either say `config.public` or be registered inside an authenticated subtree (see `authenticatedSubtree`). The check
 * runs when the app is ready, so a route registered anywhere else stops start-up.
 */
export const authPlugin = fp(
  async (app) => {
    app.decorate('requireActor', (request: FastifyRequest) => {
      if (!request.actor) throw new UnauthorizedError();
      return request.actor;
    });
    app.decorate('requireStepUp', (request: FastifyRequest) => {
      if (!request.actor) throw new UnauthorizedError();
      const actor = request.actor;
      if (!stepUpApplies(actor)) return actor;
      if (!stepUpFresh(actor, app.config.mfaStepUpSeconds, Date.now())) throw new StepUpRequiredError(app.config.mfaStepUpSeconds);
      request.actor = { ...actor, stepUpVerified: true };
      return request.actor;
    });
    // The route options object is kept, not copied: the subtree's own onRoute hook runs after this one and marks it.
    const routes: RouteRecord[] = [];
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (method !== 'HEAD') routes.push({ method, route });
      }
    });
    const table = (): RouteAccess[] =>
      routes.map(({ method, route }) => ({
        method,
        url: route.url,
        public: route.config?.public === true,
        requires: route.config?.requires,
        acceptsStreamTicket: route.config?.acceptsStreamTicket === true,
        queryParameters: Object.keys((route.schema?.querystring as { properties?: object } | undefined)?.properties ?? {}),
        subtree: route.config?.authenticatedBy,
        stepUp: route.config?.stepUp === true,
      }));
    app.decorate('routeAccessTable', table);
    app.addHook('onReady', async () => {
      const unguarded = table().filter((route) => !route.public && !route.subtree);
      if (unguarded.length > 0) {
        const names = unguarded.map((route) => `${route.method} ${route.url}`).join(', ');
        throw new Error(`routes outside every authenticated subtree and not marked public: ${names}`);
      }
    });
    app.decorateRequest('actor', null);
    app.decorateRequest('requestContext', {
      getter(this: FastifyRequest) {
        const agent = this.headers['user-agent'];
        const apiKeyId = this.actor?.apiKeyId;
        return {
          ipAddress: this.ip ?? null,
          userAgent: typeof agent === 'string' ? agent.slice(0, 512) : null,
          requestId: String(this.id),
          ...(apiKeyId === undefined ? {} : { apiKeyId }),
        };
      },
    });
  },
  { name: 'auth' },
);

/** A route plugin and its options, registered inside a subtree once every module has contributed its routes. */
export type RouteRegistration = (subtree: Parameters<FastifyPluginAsync>[0]) => Promise<unknown>;

export interface AuthenticatedSubtreeOptions {
  /** Names the subtree in the route table and in start-up errors. */
  name: string;
  /** Resolved per request, so a test or benchmark may swap the authenticator after start-up. */
  authenticate: RequestAuthenticator;
  /** Sent on every response of the subtree, errors included (its Content-Security-Policy first of all). */
  headers: Readonly<Record<string, string>>;
  routes: readonly RouteRegistration[];
}

/**
 * An HTTP subtree (`/api/v1` now; `/v1`, `/mcp` or a console later) as one encapsulated plugin that owns its
 * authentication, its permission check and its headers. Routes are private unless marked public; object-level checks
 * (is this the caller's object?) belong to the services.
 */
export function authenticatedSubtree(options: AuthenticatedSubtreeOptions): FastifyPluginAsync {
  return async (subtree) => {
    subtree.addHook('onRoute', (route) => {
      route.config = { ...route.config, authenticatedBy: options.name };
    });
    subtree.addHook('onRequest', async (request, reply) => {
      void reply.headers(options.headers);
      const config = request.routeOptions.config;
      if (config.public) return;
      const actor = await options.authenticate(request);
      request.actor = actor;
      // Before anything else: a user whose role requires a second factor can only enrol one (or sign out).
      if (actor.mfa?.required && !actor.mfa.enabled && !config.beforeMfaEnrollment) throw new MfaEnrollmentRequiredError();
      if (config.requires && !hasPermission(actor.role, config.requires)) {
        throw new ForbiddenError(`This action needs the ${config.requires} permission`);
      }
      if (config.stepUp) subtree.requireStepUp(request);
    });
    for (const register of options.routes) await register(subtree);
  };
}

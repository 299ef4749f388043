import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, RawServerDefault } from 'fastify';
import { authenticatedSubtree, type RouteRegistration } from '../plugins/auth.js';

/** Where the modules put their routes: `app.apiV1.routes(plugin, options)` while they register. */
export interface SubtreeRoutes {
  // The route plugins are TypeBox-typed; the subtree only registers them, so their instance type is not narrowed here.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  routes<Options extends FastifyPluginOptions>(plugin: FastifyPluginAsync<Options, RawServerDefault, any>, options: Options): void;
  /** What was collected, in the modules' order. */
  registrations(): readonly RouteRegistration[];
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The `/api/v1` subtree's routes, collected from the modules and registered by `apiV1Subtree`. */
    apiV1: SubtreeRoutes;
  }
}

/** JSON only: nothing may load, frame or be framed (the same as the app-wide baseline, owned here explicitly). */
export const API_V1_HEADERS = {
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
} as const;

/** Decorates `app.apiV1` before the modules register; they add their route plugins to it. */
export const apiV1Routes = fp(
  async (app) => {
    const registrations: RouteRegistration[] = [];
    app.decorate('apiV1', {
      routes(plugin, options) {
        registrations.push(async (subtree) => subtree.register(plugin, options));
      },
      registrations: () => registrations,
    } satisfies SubtreeRoutes);
  },
  { name: 'api-v1-routes', dependencies: ['auth'] },
);

/**
 * The `/api/v1` subtree: bearer tokens (or stream tickets where a route accepts them) resolved by the identity module,
 * route permissions, and the API's headers, for every route the modules contributed. Registered after the modules.
 */
export async function registerApiV1(app: FastifyInstance): Promise<void> {
  await app.register(
    authenticatedSubtree({
      name: 'api-v1',
      authenticate: (request) => app.identity.authenticate(request),
      headers: API_V1_HEADERS,
      routes: app.apiV1.registrations(),
    }),
    { prefix: '/api/v1' },
  );
}

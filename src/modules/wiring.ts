import type { FastifyInstance } from 'fastify';

type Decoration = Exclude<keyof FastifyInstance, symbol | number>;

/**
 * The one way a module reaches a neighbour that registers after it. Modules register in the order of
 * src/modules/index.ts and use earlier ones directly (`app.audit`, checked by each plugin's `dependencies`); the few
 * edges that point the other way (audit, identity and vault notify through notifications; tools asks approvals; chat
 * offers the tools' runtime) go through this getter, typed by the neighbour's own `declare module 'fastify'`
 * decoration and resolved when first called, i.e. after start-up.
 *
 * Every name asked for is checked once the app is ready, so a neighbour missing from modules/index.ts stops start-up
 * instead of failing (or silently doing nothing) on the first request that needs it.
 */
export function neighbour<K extends Decoration>(app: FastifyInstance, name: K): () => FastifyInstance[K] {
  app.addHook('onReady', async () => {
    // The one place that asks: everything else goes through this getter.
    // eslint-disable-next-line no-restricted-syntax
    if (!app.hasDecorator(name)) {
      throw new Error(`module wiring: "${name}" is used by a module but no registered module provides it (src/modules/index.ts)`);
    }
  });
  return () => app[name];
}

import fp from 'fastify-plugin';
import { createLlmRepository } from './llm.repository.js';
import { llmRoutes } from './llm.routes.js';
import { createLlmService, type LlmService, type ProviderKeyVault } from './llm.service.js';
import { routeSdkWarnings } from './providers/index.js';

export type { LlmModelView, LlmService, ResolvedModel, TokenCounts } from './llm.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The LLM gateway: providers, models, settings, token accounting, one streaming model call. */
    llm: LlmService;
  }
}

/** The LLM gateway module; chat builds on it. Provider keys set through the API live in the vault when it is there. */
export const llmModule = fp(
  async (app) => {
    routeSdkWarnings((message) => app.log.warn(message));
    const llm = createLlmService({
      db: app.infra.database.db,
      repository: createLlmRepository(),
      audit: app.audit,
      config: app.config.llm,
      vault: () => (app.hasDecorator('vault') ? app.getDecorator<ProviderKeyVault>('vault') : undefined),
      pubsub: app.infra.pubsub,
      logger: app.log,
    });
    app.decorate('llm', llm);

    let unsubscribe: (() => Promise<void>) | undefined;
    app.addHook('onReady', async () => {
      unsubscribe = await llm.start();
    });
    app.addHook('onClose', async () => {
      await unsubscribe?.();
    });

    await app.register(llmRoutes, { prefix: '/api/v1', llm });
  },
  { name: 'module-llm', dependencies: ['infra', 'auth', 'module-audit'] },
);

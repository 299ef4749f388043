import fp from 'fastify-plugin';
import { roleAtLeast, ROLES } from '../auth/permissions.js';
import type { ChatToolRuntime } from '../chat/chat-tools.js';
import { createBuiltinRegistry, type BuiltinTool } from './builtins/index.js';
import { createAllowlist, DEFAULT_EGRESS_TIMEOUT_MS, MAX_EGRESS_TIMEOUT_MS } from './egress.js';
import { createBuiltinExecutor, createExecutorRegistry, createWebhookExecutor } from './executors/index.js';
import { createMcpExecutor } from './executors/mcp.js';
import { createToolEngine, executionArgsAad, executionResultAad, type ToolEngine } from './tool-engine.js';
import { neighbour } from '../wiring.js';
import { createToolSchemaValidator } from './tool-schemas.js';
import { createToolsRepository } from './tools.repository.js';
import { toolRoutes } from './tools.routes.js';
import { createToolRegistry, type ToolRegistry } from './tools.service.js';

export { argsDigest, ToolExecutionFailedError, type ExecuteResult, type ExecutionView, type ToolEngine } from './tool-engine.js';
export { ToolRunError, type BuiltinRunContext, type BuiltinTool } from './builtins/index.js';
export type { ToolInput, ToolRegistry, ToolView } from './tools.service.js';

export interface ToolsModule {
  registry: ToolRegistry;
  engine: ToolEngine;
  /** Adds a built-in implementation (other modules' tools, benchmarks); a `builtin` tool row can then name it. */
  registerBuiltin(tool: BuiltinTool): void;
}

const TOOLS_CHANGED_CHANNEL = 'tools:changed';
/** Upper bound on how long another instance may use a changed definition should the change message be lost. */
const DEFINITION_CACHE_TTL_MS = 2_000;

declare module 'fastify' {
  interface FastifyInstance {
    tools: ToolsModule;
    /** The seam chat uses to offer, run and resume tool calls (src/modules/chat/chat-tools.ts). */
    chatTools: ChatToolRuntime;
  }
}

/**
 * The tool registry and the execution engine. The approval chain (module-approvals) registers after this module and
 * is looked up at call time; it calls back into the engine to run approved calls and to close rejected ones.
 */
export const toolsModule = fp(
  async (app) => {
    const db = app.infra.database.db;
    const repository = createToolsRepository();
    const validator = createToolSchemaValidator();
    const builtins = createBuiltinRegistry();
    const mcp = neighbour(app, 'mcp');
    const executors = createExecutorRegistry([
      createBuiltinExecutor(builtins),
      createWebhookExecutor(),
      createMcpExecutor(() => mcp(), (timeoutMs) => Math.min(timeoutMs ?? DEFAULT_EGRESS_TIMEOUT_MS, MAX_EGRESS_TIMEOUT_MS)),
    ]);
    const allowlist = createAllowlist(app.config.toolHttpAllowlist);
    const registry = createToolRegistry({
      db,
      repository,
      audit: app.audit,
      validator,
      builtins,
      executors,
      allowlist,
      notifier: neighbour(app, 'notifications'),
      announceChange: () => app.infra.pubsub.publish(TOOLS_CHANGED_CHANNEL, 'changed'),
      definitionCacheTtlMs: DEFINITION_CACHE_TTL_MS,
      logger: app.log,
    });
    const unsubscribe = await app.infra.pubsub.subscribe(TOOLS_CHANGED_CHANNEL, () => registry.forgetDefinitions());
    app.addHook('onClose', async () => unsubscribe());
    const engine = createToolEngine({
      db,
      repository,
      registry,
      audit: app.audit,
      fieldCipher: app.fieldCipher,
      kv: app.infra.kv,
      validator,
      executors,
      allowlist,
      secrets: neighbour(app, 'vault'),
      approvals: neighbour(app, 'approvals'),
      requesterAllowed: async (userId, role) => (await app.users.activeUserIds(ROLES.filter((candidate) => roleAtLeast(candidate, role)))).includes(userId),
      notifier: neighbour(app, 'notifications'),
      instance: app.infra.instance,
      shutdownDeadline: app.infra.shutdown.deadline,
      logger: app.log,
    });
    // Every heartbeat: calls left running by instances that are gone are resolved (within seconds of their lease).
    app.infra.instance.onTick(async () => {
      const recovered = await engine.recoverInterrupted();
      if (recovered > 0) app.log.warn({ executions: recovered }, 'tool calls of a gone instance resolved as interrupted');
    });

    app.fieldCipher.registerEncryptedColumn({
      name: 'tool_executions.encrypted_args',
      table: 'tool_executions',
      column: 'encrypted_args',
      aad: (row) => executionArgsAad(row.id),
    });
    app.fieldCipher.registerEncryptedColumn({
      name: 'tool_executions.encrypted_result',
      table: 'tool_executions',
      column: 'encrypted_result',
      aad: (row) => executionResultAad(row.id),
    });

    app.decorate('tools', { registry, engine, registerBuiltin: (tool: BuiltinTool) => builtins.register(tool) });
    app.decorate('chatTools', engine.chatTools);

    app.addHook('onReady', async () => {
      const seeded = await registry.seedBuiltins();
      if (seeded.length > 0) app.log.info({ tools: seeded }, 'built-in tools registered');
    });

    app.apiV1.routes(toolRoutes, { registry, engine });
  },
  { name: 'module-tools', dependencies: ['infra', 'auth', 'module-audit', 'module-identity', 'module-notifications', 'module-vault'] },
);

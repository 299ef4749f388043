import type { ToolImplementationType } from '../../../db/schema/tools.js';
import type { ToolExecutor } from './types.js';

export type { CheckArgsContext, ExecutorRunContext, ImplementationDefaults, ToolExecutor, ValidateContext } from './types.js';
export { createBuiltinExecutor } from './builtin.js';
export { createWebhookExecutor } from './webhook.js';

/** The tool kinds this process can run, one executor per `implementation.type`. */
export function createExecutorRegistry(initial: readonly ToolExecutor[] = []) {
  const byType = new Map<ToolImplementationType, ToolExecutor>();
  const registry = {
    register(executor: ToolExecutor): void {
      if (byType.has(executor.type)) throw new TypeError(`An executor for "${executor.type}" tools is already registered`);
      byType.set(executor.type, executor);
    },
    get(type: string): ToolExecutor | undefined {
      return byType.get(type as ToolImplementationType);
    },
    types(): ToolImplementationType[] {
      return [...byType.keys()];
    },
  };
  for (const executor of initial) registry.register(executor);
  return registry;
}

export type ExecutorRegistry = ReturnType<typeof createExecutorRegistry>;

import { httpRequestTool } from './http-request.js';
import { redactTextTool } from './redact-text.js';
import type { BuiltinTool } from './types.js';

export { ToolRunError, type BuiltinRunContext, type BuiltinTool, type ImplementationOption } from './types.js';
export { httpRequestTool } from './http-request.js';
export { redactTextTool } from './redact-text.js';

export const STANDARD_BUILTINS: readonly BuiltinTool[] = [redactTextTool, httpRequestTool];

const BUILTIN_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** The built-in implementations this process knows; a `builtin` tool row names one of them. */
export function createBuiltinRegistry(initial: readonly BuiltinTool[] = STANDARD_BUILTINS) {
  const byName = new Map<string, BuiltinTool>();
  const registry = {
    register(tool: BuiltinTool): void {
      if (!BUILTIN_NAME.test(tool.name)) throw new TypeError(`Built-in tool name "${tool.name}" must match ${BUILTIN_NAME}`);
      if (byName.has(tool.name)) throw new TypeError(`Built-in tool "${tool.name}" is already registered`);
      byName.set(tool.name, tool);
    },
    get(name: string | undefined): BuiltinTool | undefined {
      return name === undefined ? undefined : byName.get(name);
    },
    list(): BuiltinTool[] {
      return [...byName.values()];
    },
  };
  for (const tool of initial) registry.register(tool);
  return registry;
}

export type BuiltinRegistry = ReturnType<typeof createBuiltinRegistry>;

import type { ToolImplementation } from '../../../db/schema/tools.js';
import type { FieldError } from '../../../lib/errors.js';
import { ToolRunError, type BuiltinRegistry } from '../builtins/index.js';
import type { ToolExecutor } from './types.js';

const BASE = '/implementation';

/** `builtin`: a function of this codebase, named by `implementation.builtin` (src/modules/tools/builtins/). */
export function createBuiltinExecutor(builtins: BuiltinRegistry): ToolExecutor {
  return {
    type: 'builtin',

    validate(implementation) {
      const errors: FieldError[] = [];
      const builtin = builtins.get(implementation.builtin);
      if (!builtin) {
        const known = builtins.list().map((tool) => tool.name).join(', ');
        errors.push({ pointer: `${BASE}/builtin`, detail: `must name a built-in tool (${known})` });
        return errors;
      }
      for (const key of Object.keys(implementation)) {
        if (key === 'type' || key === 'builtin') continue;
        if (!(builtin.options as readonly string[]).includes(key)) errors.push({ pointer: `${BASE}/${key}`, detail: `is not an option of the built-in ${builtin.name}` });
      }
      return errors;
    },

    options(implementation: ToolImplementation) {
      return ['builtin', ...(builtins.get(implementation.builtin)?.options ?? [])];
    },

    defaults(implementation) {
      const builtin = builtins.get(implementation.builtin);
      if (!builtin) return {};
      return { description: builtin.description, inputSchema: builtin.inputSchema, outputSchema: builtin.outputSchema, requiresApproval: builtin.requiresApproval };
    },

    checkArgs(tool, args, { allowlist, validator, pointerPrefix }) {
      // A built-in also checks its own schema: an admin may narrow a built-in's arguments, never widen them.
      const builtin = builtins.get(tool.implementation.builtin);
      if (!builtin) return [];
      const errors = validator.validate({ id: `builtin:${builtin.name}`, version: 0 }, 'input', builtin.inputSchema, args, pointerPrefix);
      if (errors.length === 0 && builtin.checkArgs) {
        errors.push(...builtin.checkArgs(args, { allowlist }).map((error) => ({ ...error, pointer: `${pointerPrefix}${error.pointer}` })));
      }
      return errors;
    },

    isPure(tool) {
      return builtins.get(tool.implementation.builtin)?.pure === true;
    },

    run(tool, args, context) {
      const builtin = builtins.get(tool.implementation.builtin);
      if (!builtin) throw new ToolRunError('builtin_missing', `the built-in "${tool.implementation.builtin ?? ''}" is not available in this version`);
      return builtin.run(args, {
        executionId: context.executionId,
        userId: context.userId,
        approvalId: context.approvalId,
        toolName: tool.name,
        implementation: tool.implementation,
        signal: context.signal,
        allowlist: context.allowlist,
        useSecret: context.useSecret,
        outputSchema: tool.outputSchema,
      });
    },
  };
}

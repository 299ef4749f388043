import type { FieldError } from '../../../lib/errors.js';
import { ToolRunError } from '../builtins/types.js';
import { DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES_LIMIT } from '../egress.js';
import type { ExecutorRunContext, ToolExecutor } from './types.js';

const BASE = '/implementation';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One call of a tool on a registered MCP server, as the MCP module makes it. */
export interface McpToolCall {
  serverId: string;
  /** The tool's name on the MCP server. */
  tool: string;
  args: Record<string, unknown>;
  timeoutMs: number;
  maxResultBytes: number;
  context: ExecutorRunContext;
}

export interface McpToolCaller {
  callTool(call: McpToolCall): Promise<unknown>;
}

/**
 * `mcp`: a tool discovered on an MCP server (`implementation: {type: "mcp", server_id, tool}`). The MCP module
 * registers after the tools module and is looked up at call time.
 */
export function createMcpExecutor(caller: () => McpToolCaller | undefined, deadlineMs: (timeoutMs: number | undefined) => number): ToolExecutor {
  return {
    type: 'mcp',

    validate(implementation) {
      const errors: FieldError[] = [];
      if (implementation.server_id === undefined || !UUID.test(implementation.server_id)) {
        errors.push({ pointer: `${BASE}/server_id`, detail: 'must be the id of a registered MCP server' });
      }
      if (implementation.tool === undefined || implementation.tool.length === 0 || implementation.tool.length > 128) {
        errors.push({ pointer: `${BASE}/tool`, detail: 'must be the name of the tool on its MCP server (1 to 128 characters)' });
      }
      return errors;
    },

    options() {
      return ['server_id', 'tool', 'timeout_ms', 'max_response_bytes'];
    },

    async run(tool, args, context) {
      const mcp = caller();
      const { server_id: serverId, tool: remoteName } = tool.implementation;
      if (!mcp) throw new ToolRunError('mcp_unavailable', 'MCP is not available in this process');
      if (serverId === undefined || remoteName === undefined) throw new ToolRunError('mcp_misconfigured', 'the tool names no MCP server');
      return mcp.callTool({
        serverId,
        tool: remoteName,
        args,
        timeoutMs: deadlineMs(tool.implementation.timeout_ms),
        maxResultBytes: Math.min(tool.implementation.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES_LIMIT),
        context,
      });
    },
  };
}

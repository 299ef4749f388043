import { mkdirSync } from 'node:fs';
import path from 'node:path';
import fp from 'fastify-plugin';
import { createAllowlist } from '../tools/egress.js';
import { createMcpRepository } from './mcp.repository.js';
import { mcpRoutes } from './mcp.routes.js';
import { createMcpService, type McpService } from './mcp.service.js';

export type { McpServerView, McpService } from './mcp.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    mcp: McpService;
  }
}

/**
 * CDSA as an MCP client: registered MCP servers and the discovery of their tools. Their calls run in the tool engine
 * (the `mcp` executor reaches this module through `neighbour(app, 'mcp')`).
 */
export const mcpModule = fp(
  async (app) => {
    // A stdio server runs in its own directory with an environment of its own: none of this process's variables.
    const cwd = path.join(app.config.dataDir, 'mcp-stdio');
    if (app.config.mcpStdioCommands.length > 0) mkdirSync(cwd, { recursive: true });
    const service = createMcpService({
      db: app.infra.database.db,
      repository: createMcpRepository(),
      audit: app.audit,
      tools: app.tools.registry,
      secrets: app.vault,
      allowlist: createAllowlist(app.config.toolHttpAllowlist),
      stdioCommands: app.config.mcpStdioCommands,
      stdio: { cwd, env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: cwd, LANG: 'C.UTF-8' } },
      logger: app.log,
    });
    app.decorate('mcp', service);
    app.apiV1.routes(mcpRoutes, { service });
  },
  { name: 'module-mcp', dependencies: ['infra', 'auth', 'module-audit', 'module-vault', 'module-tools'] },
);

import { asc, eq, gt } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { mcpServers } from '../../db/schema/mcp.js';

export type McpServerRow = typeof mcpServers.$inferSelect;
export type NewMcpServerRow = typeof mcpServers.$inferInsert;
export type McpServerPatch = Partial<Pick<NewMcpServerRow, 'url' | 'authSecret' | 'command' | 'args' | 'isEnabled' | 'status' | 'error'>>;
export interface McpSyncPatch {
  status: McpServerRow['status'];
  protocolVersion: string | null;
  toolCount: number;
  lastSyncAt: Date;
  error: string | null;
}

/** Queries of the MCP module's table. */
export function createMcpRepository() {
  return {
    async insert(db: DbOrTx, row: NewMcpServerRow): Promise<McpServerRow | undefined> {
      const [inserted] = await db.insert(mcpServers).values(row).onConflictDoNothing().returning();
      return inserted;
    },

    async findById(db: DbOrTx, id: string): Promise<McpServerRow | undefined> {
      const [row] = await db.select().from(mcpServers).where(eq(mcpServers.id, id)).limit(1);
      return row;
    },

    async list(db: DbOrTx, options: { afterName?: string; limit: number }): Promise<McpServerRow[]> {
      const query = db.select().from(mcpServers);
      const filtered = options.afterName === undefined ? query : query.where(gt(mcpServers.name, options.afterName));
      return filtered.orderBy(asc(mcpServers.name)).limit(options.limit);
    },

    async update(db: DbOrTx, id: string, patch: McpServerPatch, now: Date): Promise<McpServerRow | undefined> {
      const [row] = await db.update(mcpServers).set({ ...patch, updatedAt: now }).where(eq(mcpServers.id, id)).returning();
      return row;
    },

    async recordSync(db: DbOrTx, id: string, patch: McpSyncPatch): Promise<McpServerRow | undefined> {
      const [row] = await db.update(mcpServers).set(patch).where(eq(mcpServers.id, id)).returning();
      return row;
    },

    async remove(db: DbOrTx, id: string): Promise<McpServerRow | undefined> {
      const [row] = await db.delete(mcpServers).where(eq(mcpServers.id, id)).returning();
      return row;
    },
  };
}

export type McpRepository = ReturnType<typeof createMcpRepository>;

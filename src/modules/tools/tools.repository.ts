import { and, asc, desc, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { toolExecutions, tools, type ToolExecutionStatus } from '../../db/schema/tools.js';
import type { Role } from '../auth/permissions.js';

export type ToolRow = typeof tools.$inferSelect;
export type NewToolRow = typeof tools.$inferInsert;
export type ToolExecutionRow = typeof toolExecutions.$inferSelect;
export type NewToolExecutionRow = typeof toolExecutions.$inferInsert;

/** Fields of a tool an update may change (the version is bumped by the repository). */
export type ToolPatch = Partial<
  Pick<
    NewToolRow,
    | 'name'
    | 'description'
    | 'inputSchema'
    | 'outputSchema'
    | 'requiredRole'
    | 'requiresApproval'
    | 'approvalWhen'
    | 'approvalsRequired'
    | 'approverRole'
    | 'cacheTtlSeconds'
    | 'isEnabled'
    | 'implementation'
  >
>;

export interface ExecutionOutcomePatch {
  status: Extract<ToolExecutionStatus, 'completed' | 'failed'>;
  encryptedResult: string | null;
  error: string | null;
  durationMs: number | null;
  completedAt: Date;
}

/** Queries of the tools module's tables. "Live" tools are those not deleted. */
export function createToolsRepository() {
  return {
    async insertTool(db: DbOrTx, row: NewToolRow): Promise<ToolRow | undefined> {
      const [inserted] = await db.insert(tools).values(row).onConflictDoNothing().returning();
      return inserted;
    },

    async findLiveById(db: DbOrTx, id: string): Promise<ToolRow | undefined> {
      const [row] = await db
        .select()
        .from(tools)
        .where(and(eq(tools.id, id), isNull(tools.deletedAt)));
      return row;
    },

    async findLiveByName(db: DbOrTx, name: string): Promise<ToolRow | undefined> {
      const [row] = await db
        .select()
        .from(tools)
        .where(and(eq(tools.name, name), isNull(tools.deletedAt)));
      return row;
    },

    /** Whether any row, deleted or not, ever had this name (built-ins are seeded once, not resurrected). */
    async nameEverUsed(db: DbOrTx, name: string): Promise<boolean> {
      const [row] = await db.select({ id: tools.id }).from(tools).where(eq(tools.name, name)).limit(1);
      return row !== undefined;
    },

    async listLive(
      db: DbOrTx,
      options: { roles: readonly Role[] | null; includeDisabled: boolean; afterName?: string; limit: number },
    ): Promise<ToolRow[]> {
      const conditions = [isNull(tools.deletedAt)];
      if (options.roles) conditions.push(inArray(tools.requiredRole, [...options.roles]));
      if (!options.includeDisabled) conditions.push(eq(tools.isEnabled, true));
      if (options.afterName !== undefined) conditions.push(gt(tools.name, options.afterName));
      return db
        .select()
        .from(tools)
        .where(and(...conditions))
        .orderBy(asc(tools.name))
        .limit(options.limit);
    },

    /** Applies the patch and bumps the version; undefined when the tool is gone or the new name is taken. */
    async updateTool(db: DbOrTx, id: string, patch: ToolPatch, now: Date): Promise<ToolRow | undefined> {
      const [row] = await db
        .update(tools)
        .set({ ...patch, version: sql`${tools.version} + 1`, updatedAt: now })
        .where(and(eq(tools.id, id), isNull(tools.deletedAt)))
        .returning();
      return row;
    },

    async softDelete(db: DbOrTx, id: string, now: Date): Promise<ToolRow | undefined> {
      const [row] = await db
        .update(tools)
        .set({ deletedAt: now, isEnabled: false, updatedAt: now, version: sql`${tools.version} + 1` })
        .where(and(eq(tools.id, id), isNull(tools.deletedAt)))
        .returning();
      return row;
    },

    async insertExecution(db: DbOrTx, row: NewToolExecutionRow): Promise<void> {
      await db.insert(toolExecutions).values(row);
    },

    async findExecution(db: DbOrTx, id: string): Promise<ToolExecutionRow | undefined> {
      const [row] = await db.select().from(toolExecutions).where(eq(toolExecutions.id, id));
      return row;
    },

    /**
     * The one transition that lets an approved call run: `pending_approval` → `running`, as a conditional update.
     * Whoever gets the row runs the call; everyone else (another instance, a retried job) gets undefined.
     */
    async claimPendingExecution(db: DbOrTx, id: string, now: Date): Promise<ToolExecutionRow | undefined> {
      const [row] = await db
        .update(toolExecutions)
        .set({ status: 'running', startedAt: now })
        .where(and(eq(toolExecutions.id, id), eq(toolExecutions.status, 'pending_approval')))
        .returning();
      return row;
    },

    /** Records how a running call ended; only a running call can end. */
    async finishExecution(db: DbOrTx, id: string, patch: ExecutionOutcomePatch): Promise<boolean> {
      const rows = await db
        .update(toolExecutions)
        .set(patch)
        .where(and(eq(toolExecutions.id, id), eq(toolExecutions.status, 'running')))
        .returning({ id: toolExecutions.id });
      return rows.length > 0;
    },

    /** A pending call whose approval was rejected or expired: it never runs. */
    async closePendingExecution(
      db: DbOrTx,
      id: string,
      status: Extract<ToolExecutionStatus, 'rejected' | 'expired' | 'failed'>,
      error: string,
      now: Date,
    ): Promise<ToolExecutionRow | undefined> {
      const [row] = await db
        .update(toolExecutions)
        .set({ status, error, completedAt: now })
        .where(and(eq(toolExecutions.id, id), eq(toolExecutions.status, 'pending_approval')))
        .returning();
      return row;
    },

    /** Calls left `running` by a process that died mid-call are marked failed (they may or may not have run). */
    async failStaleRunning(db: DbOrTx, startedBefore: Date, now: Date): Promise<ToolExecutionRow[]> {
      return db
        .update(toolExecutions)
        .set({ status: 'failed', error: 'interrupted: the service stopped while the call was running', completedAt: now })
        .where(and(eq(toolExecutions.status, 'running'), lt(toolExecutions.startedAt, startedBefore)))
        .returning();
    },

    /** A tool's executions, newest first; only `userId`'s when given. */
    async listExecutions(
      db: DbOrTx,
      options: { toolId: string; userId: string | null; before?: { createdAt: Date; id: string }; limit: number },
    ): Promise<ToolExecutionRow[]> {
      const conditions = [eq(toolExecutions.toolId, options.toolId)];
      if (options.userId !== null) conditions.push(eq(toolExecutions.userId, options.userId));
      if (options.before) {
        const { createdAt, id } = options.before;
        const older = or(lt(toolExecutions.createdAt, createdAt), and(eq(toolExecutions.createdAt, createdAt), lt(toolExecutions.id, id)));
        if (older) conditions.push(older);
      }
      return db
        .select()
        .from(toolExecutions)
        .where(and(...conditions))
        .orderBy(desc(toolExecutions.createdAt), desc(toolExecutions.id))
        .limit(options.limit);
    },
  };
}

export type ToolsRepository = ReturnType<typeof createToolsRepository>;

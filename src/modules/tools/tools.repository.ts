import { and, asc, desc, eq, gt, inArray, isNotNull, isNull, lt, ne, or, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { toolExecutions, tools, type ToolExecutionStatus } from '../../db/schema/tools.js';
import { serviceInstances } from '../../db/schema/instances.js';
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
  status: Extract<ToolExecutionStatus, 'completed' | 'failed' | 'interrupted'>;
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

    async listLiveByMcpServer(db: DbOrTx, serverId: string): Promise<ToolRow[]> {
      return db
        .select()
        .from(tools)
        .where(and(isNull(tools.deletedAt), sql`${tools.implementation}->>'type' = 'mcp'`, sql`${tools.implementation}->>'server_id' = ${serverId}`))
        .orderBy(asc(tools.name));
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
    async claimPendingExecution(db: DbOrTx, id: string, now: Date, instanceId: string): Promise<ToolExecutionRow | undefined> {
      const [row] = await db
        .update(toolExecutions)
        .set({ status: 'running', startedAt: now, instanceId })
        .where(and(eq(toolExecutions.id, id), eq(toolExecutions.status, 'pending_approval')))
        .returning();
      return row;
    },

    /**
     * Records how a running call ended; only a running call can end. The instance that ran it may also replace an
     * `interrupted` it was given while it looked gone (it was cut off from the database, not dead): the real outcome
     * is better than "unknown".
     */
    async finishExecution(db: DbOrTx, id: string, patch: ExecutionOutcomePatch, instanceId?: string): Promise<boolean> {
      const finishable =
        instanceId === undefined
          ? eq(toolExecutions.status, 'running')
          : or(eq(toolExecutions.status, 'running'), and(eq(toolExecutions.status, 'interrupted'), eq(toolExecutions.instanceId, instanceId)));
      const rows = await db
        .update(toolExecutions)
        .set(patch)
        .where(and(eq(toolExecutions.id, id), finishable))
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

    /**
     * Calls left `running` by an instance that is gone are resolved as `interrupted` (they may or may not have taken
     * effect; they are never re-run). Gone: an instance other than `selfId` whose lease in service_instances is older
     * than `leaseMs` by the database's clock, or absent; only when `judgeOthers`. A call with no instance (recorded
     * before instances had leases) counts as gone once it started before `unownedStartedBefore`.
     */
    async interruptOrphaned(
      db: DbOrTx,
      input: { selfId: string; leaseMs: number; judgeOthers: boolean; unownedStartedBefore: Date; error: string; now: Date },
    ): Promise<ToolExecutionRow[]> {
      const unowned = and(isNull(toolExecutions.instanceId), lt(toolExecutions.startedAt, input.unownedStartedBefore));
      const ownerGone = and(
        isNotNull(toolExecutions.instanceId),
        ne(toolExecutions.instanceId, input.selfId),
        sql`not exists (select 1 from ${serviceInstances} where ${serviceInstances.id} = ${toolExecutions.instanceId} and ${serviceInstances.heartbeatAt} > now() - make_interval(secs => ${input.leaseMs / 1000}))`,
      );
      return db
        .update(toolExecutions)
        .set({ status: 'interrupted', error: input.error, completedAt: input.now })
        .where(and(eq(toolExecutions.status, 'running'), input.judgeOthers ? or(unowned, ownerGone) : unowned))
        .returning();
    },

    /** Leases of instances gone long ago (nothing of theirs is left running once they were recovered). */
    async forgetGoneInstances(db: DbOrTx, olderThanMs: number): Promise<void> {
      await db.delete(serviceInstances).where(sql`${serviceInstances.heartbeatAt} < now() - make_interval(secs => ${olderThanMs / 1000})`);
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

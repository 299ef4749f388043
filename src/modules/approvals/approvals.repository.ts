import { and, asc, desc, eq, inArray, isNull, lt, lte, ne, or, type SQL } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { approvalDecisions, approvals, type ApprovalDecisionValue, type ApprovalStatus } from '../../db/schema/approvals.js';
import type { Role } from '../auth/permissions.js';

export type ApprovalRow = typeof approvals.$inferSelect;
export type NewApprovalRow = typeof approvals.$inferInsert;
export type ApprovalDecisionRow = typeof approvalDecisions.$inferSelect;

export interface PageKey {
  requestedAt: Date;
  id: string;
}

function olderThan(key: PageKey | undefined) {
  if (!key) return undefined;
  return or(lt(approvals.requestedAt, key.requestedAt), and(eq(approvals.requestedAt, key.requestedAt), lt(approvals.id, key.id)));
}

/** One page of the approvals matching `scope`, newest first, optionally of one status and older than `before`. */
async function listPage(db: DbOrTx, scope: SQL[], options: { status: ApprovalStatus | null; before?: PageKey; limit: number }): Promise<ApprovalRow[]> {
  const conditions = [...scope];
  if (options.status) conditions.push(eq(approvals.status, options.status));
  const older = olderThan(options.before);
  if (older) conditions.push(older);
  return db
    .select()
    .from(approvals)
    .where(and(...conditions))
    .orderBy(desc(approvals.requestedAt), desc(approvals.id))
    .limit(options.limit);
}

/** Queries of the approvals tables. Writes that decide an outcome are conditional, so concurrent callers can't both win. */
/** The same call by the same person in the same binding (a chat session, or an API key for MCP). */
function sameCall(key: { sessionId: string; toolId: string; argsDigest: string; requesterId: string }) {
  return and(eq(approvals.sessionId, key.sessionId), eq(approvals.toolId, key.toolId), eq(approvals.argsDigest, key.argsDigest), eq(approvals.requesterId, key.requesterId));
}

export function createApprovalsRepository() {
  return {
    async insert(db: DbOrTx, row: NewApprovalRow): Promise<ApprovalRow> {
      const [inserted] = await db.insert(approvals).values(row).returning();
      if (!inserted) throw new Error('approval insert returned no row');
      return inserted;
    },

    async findById(db: DbOrTx, id: string, options: { forUpdate?: boolean } = {}): Promise<ApprovalRow | undefined> {
      const query = db.select().from(approvals).where(eq(approvals.id, id));
      const [row] = options.forUpdate ? await query.for('update') : await query;
      return row;
    },

    /** The approval a repeated chat call should reuse: still pending, or approved but not acted on yet. */
    async findReusable(
      db: DbOrTx,
      key: { sessionId: string; toolId: string; argsDigest: string; requesterId: string },
    ): Promise<ApprovalRow | undefined> {
      const [row] = await db
        .select()
        .from(approvals)
        .where(and(sameCall(key), or(eq(approvals.status, 'PENDING'), and(eq(approvals.status, 'APPROVED'), isNull(approvals.continuedAt)))))
        .orderBy(desc(approvals.requestedAt))
        .limit(1);
      return row;
    },

    /** The newest approval of this call in this binding that nothing acted on yet, whatever its status. */
    async findUnacted(
      db: DbOrTx,
      key: { sessionId: string; toolId: string; argsDigest: string; requesterId: string },
    ): Promise<ApprovalRow | undefined> {
      const [row] = await db
        .select()
        .from(approvals)
        .where(and(sameCall(key), isNull(approvals.continuedAt)))
        .orderBy(desc(approvals.requestedAt))
        .limit(1);
      return row;
    },

    async setOutcome(db: DbOrTx, id: string, status: Exclude<ApprovalStatus, 'PENDING'>, decidedAt: Date): Promise<ApprovalRow> {
      const [row] = await db
        .update(approvals)
        .set({ status, decidedAt })
        .where(and(eq(approvals.id, id), eq(approvals.status, 'PENDING')))
        .returning();
      if (!row) throw new Error('approval was not pending when its outcome was set');
      return row;
    },

    /** Pending and past its expiry → EXPIRED; undefined when it was no longer pending or not yet due. */
    async expireIfDue(db: DbOrTx, id: string, now: Date): Promise<ApprovalRow | undefined> {
      const [row] = await db
        .update(approvals)
        .set({ status: 'EXPIRED', decidedAt: now })
        .where(and(eq(approvals.id, id), eq(approvals.status, 'PENDING'), lte(approvals.expiresAt, now)))
        .returning();
      return row;
    },

    async insertDecision(
      db: DbOrTx,
      row: { approvalId: string; approverId: string; decision: ApprovalDecisionValue; reason: string | null; decidedAt: Date },
    ): Promise<boolean> {
      const inserted = await db.insert(approvalDecisions).values(row).onConflictDoNothing().returning({ id: approvalDecisions.id });
      return inserted.length > 0;
    },

    async decisionsFor(db: DbOrTx, approvalIds: string[]): Promise<ApprovalDecisionRow[]> {
      if (approvalIds.length === 0) return [];
      return db
        .select()
        .from(approvalDecisions)
        .where(inArray(approvalDecisions.approvalId, approvalIds))
        .orderBy(asc(approvalDecisions.decidedAt), asc(approvalDecisions.id));
    },

    /**
     * Marks a decided approval as acted on, once: the caller that gets the row runs the call (or reports the outcome);
     * a second caller, on any instance, gets undefined. `sessionId` null claims only approvals made outside a chat.
     */
    async claim(
      db: DbOrTx,
      id: string,
      filter: { sessionId: string | null; requesterId?: string; statuses: readonly Exclude<ApprovalStatus, 'PENDING'>[] },
      now: Date,
    ): Promise<ApprovalRow | undefined> {
      const conditions = [eq(approvals.id, id), isNull(approvals.continuedAt), inArray(approvals.status, [...filter.statuses])];
      conditions.push(filter.sessionId === null ? isNull(approvals.sessionId) : eq(approvals.sessionId, filter.sessionId));
      if (filter.requesterId !== undefined) conditions.push(eq(approvals.requesterId, filter.requesterId));
      const [row] = await db
        .update(approvals)
        .set({ continuedAt: now })
        .where(and(...conditions))
        .returning();
      return row;
    },

    async overduePendingIds(db: DbOrTx, now: Date, limit: number): Promise<string[]> {
      const rows = await db
        .select({ id: approvals.id })
        .from(approvals)
        .where(and(eq(approvals.status, 'PENDING'), lte(approvals.expiresAt, now)))
        .orderBy(asc(approvals.expiresAt))
        .limit(limit);
      return rows.map((row) => row.id);
    },

    /** Approved direct (non-chat) calls nobody has run yet, decided before `decidedBefore`. */
    async unexecutedApprovedIds(db: DbOrTx, decidedBefore: Date, limit: number): Promise<string[]> {
      const rows = await db
        .select({ id: approvals.id })
        .from(approvals)
        .where(
          and(
            eq(approvals.status, 'APPROVED'),
            isNull(approvals.sessionId),
            isNull(approvals.continuedAt),
            lt(approvals.decidedAt, decidedBefore),
          ),
        )
        .orderBy(asc(approvals.decidedAt))
        .limit(limit);
      return rows.map((row) => row.id);
    },

    /** Approvals an approver of these roles may decide (never their own requests), newest first. */
    async listForApprover(
      db: DbOrTx,
      options: { approverRoles: readonly Role[]; excludeRequesterId: string; status: ApprovalStatus | null; before?: PageKey; limit: number },
    ): Promise<ApprovalRow[]> {
      return listPage(db, [inArray(approvals.approverRole, [...options.approverRoles]), ne(approvals.requesterId, options.excludeRequesterId)], options);
    },

    async listForRequester(
      db: DbOrTx,
      options: { requesterId: string; status: ApprovalStatus | null; before?: PageKey; limit: number },
    ): Promise<ApprovalRow[]> {
      return listPage(db, [eq(approvals.requesterId, options.requesterId)], options);
    },
  };
}

export type ApprovalsRepository = ReturnType<typeof createApprovalsRepository>;

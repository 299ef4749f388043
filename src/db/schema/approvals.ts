import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { id, timestampMs } from './columns.js';
import { toolExecutions, tools } from './tools.js';
import { users, type Role } from './users.js';

export const APPROVAL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

export const APPROVAL_DECISIONS = ['APPROVED', 'REJECTED'] as const;
export type ApprovalDecisionValue = (typeof APPROVAL_DECISIONS)[number];

/**
 * A request to run exactly one tool call. It binds the tool (and the version of its definition) and the SHA-256 of
 * the canonical JSON of the arguments; the arguments themselves are a field ciphertext bound to the row
 * (`approvals:<id>:tool_args`). Deciding locks the row; `continued_at` is set by the one claim that acts on the
 * outcome (runs the call, or reports the rejection to the chat), so nothing acts on it twice.
 */
export const approvals = pgTable(
  'approvals',
  {
    id: id(),
    status: text('status').$type<ApprovalStatus>().notNull().default('PENDING'),
    toolId: uuid('tool_id')
      .notNull()
      .references(() => tools.id),
    toolName: text('tool_name').notNull(),
    toolVersion: integer('tool_version').notNull(),
    encryptedToolArgs: text('encrypted_tool_args').notNull(),
    argsDigest: text('args_digest').notNull(),
    requesterId: uuid('requester_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    approvalsRequired: integer('approvals_required').notNull(),
    approverRole: text('approver_role').$type<Role>().notNull(),
    executionId: uuid('execution_id')
      .notNull()
      .references(() => toolExecutions.id, { onDelete: 'cascade' }),
    sessionId: uuid('session_id'),
    toolCallId: text('tool_call_id'),
    requestedAt: timestampMs('requested_at').notNull().defaultNow(),
    decidedAt: timestampMs('decided_at'),
    expiresAt: timestampMs('expires_at').notNull(),
    continuedAt: timestampMs('continued_at'),
  },
  (table) => [
    index('approvals_status_requested_idx').on(table.status, table.requestedAt, table.id),
    index('approvals_requester_idx').on(table.requesterId, table.requestedAt, table.id),
    index('approvals_pending_expiry_idx').on(table.expiresAt).where(sql`${table.status} = 'PENDING'`),
    index('approvals_session_idx').on(table.sessionId).where(sql`${table.sessionId} is not null`),
    // The same gated call proposed again in a chat session reuses its pending approval, even under a race.
    uniqueIndex('approvals_session_call_pending_idx')
      .on(table.sessionId, table.toolId, table.argsDigest)
      .where(sql`${table.status} = 'PENDING' and ${table.sessionId} is not null`),
    check('approvals_status_check', sql`${table.status} in ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')`),
    check('approvals_approver_role_check', sql`${table.approverRole} in ('MANAGER', 'ADMIN')`),
  ],
);

/** One decision per approver per approval (the unique index makes "each approver decides once" hold under races). */
export const approvalDecisions = pgTable(
  'approval_decisions',
  {
    id: id(),
    approvalId: uuid('approval_id')
      .notNull()
      .references(() => approvals.id, { onDelete: 'cascade' }),
    approverId: uuid('approver_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    decision: text('decision').$type<ApprovalDecisionValue>().notNull(),
    reason: text('reason'),
    decidedAt: timestampMs('decided_at').notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex('approval_decisions_approval_approver_idx').on(table.approvalId, table.approverId),
    check('approval_decisions_decision_check', sql`${table.decision} in ('APPROVED', 'REJECTED')`),
  ],
);

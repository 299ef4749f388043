import { randomUUID } from 'node:crypto';
import type { Db, DbOrTx } from '../../db/client.js';
import type { ApprovalDecisionValue, ApprovalStatus } from '../../db/schema/approvals.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import type { JobQueue } from '../../lib/infra/jobs.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, roleAtLeast, ROLES, SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import type { NotificationContent, NotifyInput } from '../notifications/notifications.types.js';
import type { FieldEncryptionService } from '../vault/field-cipher.js';
import type { ApprovalDecisionRow, ApprovalRow, ApprovalsRepository, PageKey } from './approvals.repository.js';

export const APPROVAL_EXPIRE_JOB = 'approvals.expire';
export const APPROVAL_EXECUTE_JOB = 'approvals.execute';
export const REASON_MAX_LENGTH = 1_000;
const RESOURCE_TYPE = 'approval';
const SWEEP_BATCH = 200;
/** An approved direct call not picked up by its job within this long is handed to a new job by the sweep. */
const EXECUTE_GRACE_MS = 30_000;

/** Where an approval's arguments belong: a ciphertext copied to another row does not decrypt. */
export function approvalArgsAad(approvalId: string): string {
  return `approvals:${approvalId}:tool_args`;
}

export function approvalLink(approvalId: string): string {
  return `/api/v1/approvals/${approvalId}`;
}

export interface ApprovalDecisionView {
  approver_id: string;
  decision: ApprovalDecisionValue;
  reason: string | null;
  decided_at: string;
}

export interface ApprovalView {
  id: string;
  status: ApprovalStatus;
  tool_id: string;
  tool_name: string;
  tool_args: Record<string, unknown>;
  args_digest: string;
  requester_id: string;
  /** Who asked, so an approver sees a name (CONTRACT §5); null when that account no longer exists. */
  requester: RequesterName | null;
  approvals_required: number;
  approver_role: Role;
  decisions: ApprovalDecisionView[];
  execution_id: string;
  session_id: string | null;
  tool_call_id: string | null;
  requested_at: string;
  decided_at: string | null;
  expires_at: string;
  continued_at: string | null;
}

/** What the tool engine does when an approval closes without a run (rejected or expired), in the same transaction. */
export interface ApprovalLifecycle {
  onClosed(uow: UnitOfWork, approval: ApprovalRow, outcome: 'REJECTED' | 'EXPIRED'): Promise<AuditEventInput[]>;
}

export interface ApprovalNotifier {
  notify(input: NotifyInput, uow?: UnitOfWork): Promise<unknown>;
  notifyUsers(userIds: string[], content: NotificationContent, uow?: UnitOfWork): Promise<unknown>;
}

export interface ApprovalLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * A tool's own condition on who may decide its approvals (beyond role and separation of duties), e.g. a clearance.
 * Returns why the actor may not decide, or null.
 */
export type DecisionGuard = (approver: Actor, args: Record<string, unknown>) => Promise<string | null>;

export interface RequesterName {
  username: string;
  full_name: string | null;
}

export interface ApprovalServiceDeps {
  db: Db;
  repository: ApprovalsRepository;
  audit: Pick<AuditRecorder, 'record' | 'recordMany'>;
  fieldCipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  jobs: Pick<JobQueue, 'enqueue'>;
  /** Resolved at call time: notifications are optional in some deployments and unit tests. */
  notifier: () => ApprovalNotifier | undefined;
  /** Ids of the active users holding one of these roles (the identity module). */
  activeUserIds: (roles: readonly Role[]) => Promise<string[]>;
  /** Usernames and full names by user id (the identity module); absent in unit tests that do not need them. */
  displayNames?: (ids: readonly string[]) => Promise<Map<string, RequesterName>>;
  lifecycle: ApprovalLifecycle;
  ttlSeconds: number;
  logger?: ApprovalLogger;
  now?: () => Date;
}

export interface ApprovalRequestInput {
  approvalId: string;
  tool: { id: string; name: string; version: number; approvalsRequired: number; approverRole: Role };
  args: Record<string, unknown>;
  argsDigest: string;
  requester: Actor;
  executionId: string;
  sessionId: string | null;
  toolCallId: string | null;
  /** Who is told about the request: computed before the transaction opens (see `approverIdsFor`). */
  notifyUserIds: string[];
  context: RequestContext;
}

export interface ListApprovalsQuery {
  status?: ApprovalStatus;
  limit?: number;
  cursor?: string;
}

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

function rolesAtLeast(role: Role): Role[] {
  return ROLES.filter((candidate) => roleAtLeast(candidate, role));
}

/** The roles whose approvals an actor of `role` may decide: those asking for `role` or lower. */
function decidableApproverRoles(role: Role): Role[] {
  return ROLES.filter((candidate) => candidate !== 'ANALYST' && roleAtLeast(role, candidate));
}

function pageKey(cursor: string | undefined): PageKey | undefined {
  const key = decodeCursor(cursor, { t: 'timestamp', id: 'uuid' });
  return key && { requestedAt: new Date(key.t), id: key.id };
}

/**
 * The human approval chain. An approval binds one tool call (tool, definition version, digest of the canonical
 * arguments) and lets it run at most once. Deciding locks the approval row, so concurrent deciders on any number of
 * instances see each other's decisions and produce one final state; each approver decides once (unique index); any
 * rejection rejects; the quorum approves. Nobody decides their own request.
 */
export function createApprovalService(deps: ApprovalServiceDeps) {
  const { db, repository, audit, fieldCipher, jobs, lifecycle } = deps;
  const now = deps.now ?? (() => new Date());
  const decisionGuards = new Map<string, DecisionGuard>();

  function decryptArgs(row: ApprovalRow): Record<string, unknown> {
    const parsed: unknown = JSON.parse(fieldCipher.decrypt(row.encryptedToolArgs, approvalArgsAad(row.id)));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('stored approval arguments are not an object');
    return parsed as Record<string, unknown>;
  }

  async function namesOf(rows: readonly ApprovalRow[]): Promise<Map<string, RequesterName>> {
    return deps.displayNames ? deps.displayNames(rows.map((row) => row.requesterId)) : new Map();
  }

  function present(row: ApprovalRow, decisions: ApprovalDecisionRow[], names: Map<string, RequesterName>): ApprovalView {
    return {
      id: row.id,
      status: row.status,
      tool_id: row.toolId,
      tool_name: row.toolName,
      tool_args: decryptArgs(row),
      args_digest: row.argsDigest,
      requester_id: row.requesterId,
      requester: names.get(row.requesterId) ?? null,
      approvals_required: row.approvalsRequired,
      approver_role: row.approverRole,
      decisions: decisions
        .filter((decision) => decision.approvalId === row.id)
        .map((decision) => ({
          approver_id: decision.approverId,
          decision: decision.decision,
          reason: decision.reason,
          decided_at: decision.decidedAt.toISOString(),
        })),
      execution_id: row.executionId,
      session_id: row.sessionId,
      tool_call_id: row.toolCallId,
      requested_at: row.requestedAt.toISOString(),
      decided_at: iso(row.decidedAt),
      expires_at: row.expiresAt.toISOString(),
      continued_at: iso(row.continuedAt),
    };
  }

  async function presentOne(executor: DbOrTx, row: ApprovalRow): Promise<ApprovalView> {
    const [decisions, names] = await Promise.all([repository.decisionsFor(executor, [row.id]), namesOf([row])]);
    return present(row, decisions, names);
  }

  async function presentPage(rows: ApprovalRow[], limit: number): Promise<Page<ApprovalView>> {
    const shown = rows.slice(0, limit);
    const [decisions, names] = await Promise.all([
      repository.decisionsFor(
        db,
        shown.map((row) => row.id),
      ),
      namesOf(shown),
    ]);
    return toPage(
      rows,
      limit,
      (row) => ({ t: row.requestedAt.toISOString(), id: row.id }),
      (row) => present(row, decisions, names),
    );
  }

  function canDecide(actor: Actor, row: ApprovalRow): boolean {
    return hasPermission(actor.role, 'approvals:decide') && roleAtLeast(actor.role, row.approverRole) && row.requesterId !== actor.userId;
  }

  async function notifyRequester(uow: UnitOfWork, row: ApprovalRow, reason: string | null): Promise<void> {
    const notifier = deps.notifier();
    if (!notifier) return;
    const outcome = row.status.toLowerCase();
    await notifier.notify(
      {
        userId: row.requesterId,
        type: 'APPROVAL_DECISION',
        title: `Approval ${outcome}: ${row.toolName}`,
        message:
          row.status === 'EXPIRED'
            ? `Your request to run "${row.toolName}" expired before it was decided; it will not run.`
            : row.status === 'REJECTED'
              ? `Your request to run "${row.toolName}" was rejected${reason ? `: ${reason}` : ''}. It will not run.`
              : row.sessionId
                ? `Your request to run "${row.toolName}" was approved. Continue the chat (or, from an MCP client, make the same call again) to run it.`
                : `Your request to run "${row.toolName}" was approved; it runs now.`,
        priority: 'normal',
        data: {
          approval_id: row.id,
          status: row.status,
          tool_id: row.toolId,
          tool_name: row.toolName,
          execution_id: row.executionId,
          session_id: row.sessionId,
          link: approvalLink(row.id),
        },
      },
      uow,
    );
  }

  /** Expires a locked, pending, overdue approval inside `uow`: the call never runs, the requester is told. */
  async function expireLocked(uow: UnitOfWork, id: string): Promise<ApprovalRow | undefined> {
    const expired = await repository.expireIfDue(uow.tx, id, now());
    if (!expired) return undefined;
    const events = await lifecycle.onClosed(uow, expired, 'EXPIRED');
    await notifyRequester(uow, expired, null);
    await audit.recordMany(uow.tx, [
      ...events,
      {
        eventType: 'APPROVAL_EXPIRED',
        userId: null,
        resourceType: RESOURCE_TYPE,
        resourceId: expired.id,
        details: {
          tool_id: expired.toolId,
          tool_name: expired.toolName,
          requester_id: expired.requesterId,
          execution_id: expired.executionId,
          expires_at: expired.expiresAt.toISOString(),
        },
        context: SYSTEM_CONTEXT,
      },
    ]);
    return expired;
  }

  async function expireNow(id: string): Promise<ApprovalRow | undefined> {
    return withTransaction(
      db,
      async (uow) => {
        const row = await repository.findById(uow.tx, id, { forUpdate: true });
        if (!row || row.status !== 'PENDING' || row.expiresAt.getTime() > now().getTime()) return undefined;
        return expireLocked(uow, id);
      },
      deps.logger,
    );
  }

  async function enqueueExecution(approvalId: string, jobId: string): Promise<void> {
    await jobs.enqueue(APPROVAL_EXECUTE_JOB, { approvalId }, { jobId, attempts: 5, backoffMs: 1_000 });
  }

  return {
    decryptArgs,

    /** Adds a tool's condition on its approvers (checked when they decide). */
    registerDecisionGuard(toolName: string, guard: DecisionGuard): void {
      decisionGuards.set(toolName, guard);
    },

    /** Who approved an approval (ids of the APPROVED decisions), for tools that check their approvers when they run. */
    async approverIds(approvalId: string): Promise<string[]> {
      const decisions = await repository.decisionsFor(db, [approvalId]);
      return decisions.filter((decision) => decision.decision === 'APPROVED').map((decision) => decision.approverId);
    },

    /** Active users who may decide an approval asking for `approverRole`, except the requester. */
    async approverIdsFor(approverRole: Role, requesterId: string): Promise<string[]> {
      const ids = await deps.activeUserIds(rolesAtLeast(approverRole));
      return ids.filter((id) => id !== requesterId);
    },

    /**
     * Creates a pending approval inside the caller's transaction (which also stores the execution it gates), tells
     * the approvers (priority high) and schedules its expiry once committed.
     */
    async request(uow: UnitOfWork, input: ApprovalRequestInput): Promise<ApprovalRow> {
      const requestedAt = now();
      const expiresAt = new Date(requestedAt.getTime() + deps.ttlSeconds * 1000);
      const row = await repository.insert(uow.tx, {
        id: input.approvalId,
        status: 'PENDING',
        toolId: input.tool.id,
        toolName: input.tool.name,
        toolVersion: input.tool.version,
        encryptedToolArgs: fieldCipher.encrypt(JSON.stringify(input.args), approvalArgsAad(input.approvalId)),
        argsDigest: input.argsDigest,
        requesterId: input.requester.userId,
        approvalsRequired: input.tool.approvalsRequired,
        approverRole: input.tool.approverRole,
        executionId: input.executionId,
        sessionId: input.sessionId,
        toolCallId: input.toolCallId,
        requestedAt,
        expiresAt,
      });
      const notifier = deps.notifier();
      if (notifier && input.notifyUserIds.length > 0) {
        await notifier.notifyUsers(
          input.notifyUserIds,
          {
            type: 'APPROVAL_REQUESTED',
            title: `Approval requested: ${row.toolName}`,
            message: `${input.requester.username} asks to run "${row.toolName}". Review the arguments, then approve or reject.`,
            priority: 'high',
            expiresAt,
            data: {
              approval_id: row.id,
              tool_id: row.toolId,
              tool_name: row.toolName,
              requester_id: row.requesterId,
              requester: input.requester.username,
              approvals_required: row.approvalsRequired,
              expires_at: expiresAt.toISOString(),
              link: approvalLink(row.id),
            },
          },
          uow,
        );
      }
      await audit.record(uow.tx, {
        eventType: 'APPROVAL_REQUESTED',
        userId: input.requester.userId,
        sessionId: input.requester.sessionId,
        resourceType: RESOURCE_TYPE,
        resourceId: row.id,
        details: {
          tool_id: row.toolId,
          tool_name: row.toolName,
          execution_id: row.executionId,
          args_digest: row.argsDigest,
          approvals_required: row.approvalsRequired,
          approver_role: row.approverRole,
          chat_session_id: row.sessionId,
          expires_at: expiresAt.toISOString(),
        },
        context: input.context,
      });
      uow.afterCommit(() =>
        jobs.enqueue(APPROVAL_EXPIRE_JOB, { approvalId: row.id }, { jobId: row.id, delayMs: deps.ttlSeconds * 1000, attempts: 5 }),
      );
      return row;
    },

    async decide(
      actor: Actor,
      id: string,
      input: { decision: ApprovalDecisionValue; reason?: string | null },
      context: RequestContext,
    ): Promise<ApprovalView> {
      if (!hasPermission(actor.role, 'approvals:decide')) throw new ForbiddenError('This action needs the approvals:decide permission');
      const reason = input.reason === undefined || input.reason === null || input.reason.trim() === '' ? null : input.reason.trim().slice(0, REASON_MAX_LENGTH);
      // Read before the transaction: a guard may query other modules, which must not wait on this one's lock.
      const proposed = await repository.findById(db, id);
      const guard = proposed ? decisionGuards.get(proposed.toolName) : undefined;
      if (proposed && guard && proposed.requesterId !== actor.userId && proposed.status === 'PENDING') {
        const refusal = await guard(actor, decryptArgs(proposed));
        if (refusal) throw new ForbiddenError(refusal);
      }
      const result = await withTransaction(
        db,
        async (uow) => {
          // The lock serialises every decider of this approval, on every instance, until this transaction ends.
          const row = await repository.findById(uow.tx, id, { forUpdate: true });
          if (!row) throw new NotFoundError('Approval');
          if (row.requesterId === actor.userId) throw new ForbiddenError('You cannot decide your own request');
          if (!roleAtLeast(actor.role, row.approverRole)) throw new ForbiddenError(`This approval needs an approver with the ${row.approverRole} role`);
          if (row.status !== 'PENDING') throw new ConflictError(`The approval is no longer pending (it is ${row.status})`);
          if (row.expiresAt.getTime() <= now().getTime()) {
            await expireLocked(uow, row.id);
            return { expired: true as const };
          }
          const decidedAt = now();
          const inserted = await repository.insertDecision(uow.tx, { approvalId: row.id, approverId: actor.userId, decision: input.decision, reason, decidedAt });
          if (!inserted) throw new ConflictError('You have already decided on this approval');
          const decisions = await repository.decisionsFor(uow.tx, [row.id]);
          const approvedCount = decisions.filter((decision) => decision.decision === 'APPROVED').length;

          let current = row;
          const events: AuditEventInput[] = [];
          if (input.decision === 'REJECTED') {
            current = await repository.setOutcome(uow.tx, row.id, 'REJECTED', decidedAt);
            events.push(...(await lifecycle.onClosed(uow, current, 'REJECTED')));
            await notifyRequester(uow, current, reason);
          } else if (approvedCount >= row.approvalsRequired) {
            current = await repository.setOutcome(uow.tx, row.id, 'APPROVED', decidedAt);
            await notifyRequester(uow, current, reason);
            // A direct call runs by job once this commits; a chat call runs when the user continues the chat.
            if (current.sessionId === null) uow.afterCommit(() => enqueueExecution(current.id, `approval-execute-${current.id}`));
          }
          events.push({
            eventType: 'APPROVAL_DECISION',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: RESOURCE_TYPE,
            resourceId: row.id,
            details: {
              decision: input.decision,
              reason,
              status: current.status,
              approvals: approvedCount,
              approvals_required: row.approvalsRequired,
              tool_id: row.toolId,
              tool_name: row.toolName,
              requester_id: row.requesterId,
              execution_id: row.executionId,
              // Whether a recent second factor stood behind this click (the route's step-up check).
              mfa_verified: actor.stepUpVerified === true,
              mfa_verified_at: actor.stepUpVerified && actor.mfa?.verifiedAt ? new Date(actor.mfa.verifiedAt).toISOString() : null,
            },
            context,
          });
          await audit.recordMany(uow.tx, events);
          return { expired: false as const, current, decisions };
        },
        deps.logger,
      );
      if (result.expired) throw new ConflictError('The approval has expired');
      // The requester's name is read after the commit: it is for display, not part of the decision.
      return present(result.current, result.decisions, await namesOf([result.current]));
    },

    /** Approvals the actor may decide (default: pending ones), newest first. */
    async listForApprover(actor: Actor, query: ListApprovalsQuery): Promise<Page<ApprovalView>> {
      if (!hasPermission(actor.role, 'approvals:decide')) throw new ForbiddenError('This action needs the approvals:decide permission');
      const limit = clampLimit(query.limit);
      const rows = await repository.listForApprover(db, {
        approverRoles: decidableApproverRoles(actor.role),
        excludeRequesterId: actor.userId,
        status: query.status ?? 'PENDING',
        before: pageKey(query.cursor),
        limit: limit + 1,
      });
      return presentPage(rows, limit);
    },

    async listMine(actor: Actor, query: ListApprovalsQuery): Promise<Page<ApprovalView>> {
      const limit = clampLimit(query.limit);
      const rows = await repository.listForRequester(db, {
        requesterId: actor.userId,
        status: query.status ?? null,
        before: pageKey(query.cursor),
        limit: limit + 1,
      });
      return presentPage(rows, limit);
    },

    /** The requester and the people who may decide it see an approval; for anyone else it does not exist. */
    async get(actor: Actor, id: string): Promise<ApprovalView> {
      const row = await repository.findById(db, id);
      if (!row || (row.requesterId !== actor.userId && !canDecide(actor, row) && actor.role !== 'ADMIN')) throw new NotFoundError('Approval');
      return presentOne(db, row);
    },

    async find(id: string): Promise<ApprovalRow | undefined> {
      return repository.findById(db, id);
    },

    /** The approval a repeated chat call should reuse (pending, or approved and not yet acted on). */
    async findReusable(key: { sessionId: string; toolId: string; argsDigest: string; requesterId: string }): Promise<ApprovalRow | undefined> {
      return repository.findReusable(db, key);
    },

    /**
     * The newest approval of this call (tool, argument digest, requester) bound to `sessionId` that nothing acted on
     * yet, in any status: how a repeated MCP call learns what became of its request.
     */
    async findUnacted(key: { sessionId: string; toolId: string; argsDigest: string; requesterId: string }): Promise<ApprovalRow | undefined> {
      return repository.findUnacted(db, key);
    },

    /**
     * Loads the approval a chat continuation names. Another user's approval, or another session's, does not exist;
     * a pending one is a conflict (unless it is overdue: then it expires now and the chat is told).
     */
    async loadForContinuation(actor: Actor, id: string, sessionId: string, options: { includeContinued?: boolean } = {}): Promise<ApprovalRow> {
      let row = await repository.findById(db, id);
      if (!row || row.requesterId !== actor.userId || row.sessionId !== sessionId) throw new NotFoundError('Approval');
      if (row.status === 'PENDING') {
        if (row.expiresAt.getTime() > now().getTime()) throw new ConflictError('The approval has not been decided yet');
        await expireNow(row.id);
        row = await repository.findById(db, id);
        if (!row || row.status === 'PENDING') throw new ConflictError('The approval has not been decided yet');
      }
      if (row.continuedAt !== null && !options.includeContinued) throw new ConflictError('This approval has already been continued');
      return row;
    },

    /** Claims a decided approval to act on it, once (see the repository). Runs in the caller's transaction. */
    async claim(
      uow: UnitOfWork,
      id: string,
      filter: { sessionId: string | null; requesterId?: string; statuses: readonly Exclude<ApprovalStatus, 'PENDING'>[] },
    ): Promise<ApprovalRow | undefined> {
      return repository.claim(uow.tx, id, filter, now());
    },

    /** The first rejection's reason, for telling the model why. */
    async rejectionReason(id: string): Promise<string | null> {
      const decisions = await repository.decisionsFor(db, [id]);
      return decisions.find((decision) => decision.decision === 'REJECTED')?.reason ?? null;
    },

    /**
     * The delayed expiry job. Idempotent: an approval decided meanwhile is left alone; one whose expiry is still
     * ahead (a clock running early elsewhere) is rescheduled.
     */
    async expire(approvalId: string): Promise<void> {
      const row = await repository.findById(db, approvalId);
      if (!row || row.status !== 'PENDING') return;
      const remainingMs = row.expiresAt.getTime() - now().getTime();
      if (remainingMs > 0) {
        await jobs.enqueue(APPROVAL_EXPIRE_JOB, { approvalId }, { jobId: `${approvalId}-${randomUUID()}`, delayMs: remainingMs, attempts: 5 });
        return;
      }
      await expireNow(approvalId);
    },

    /**
     * Crash recovery, run at start-up and periodically: expires overdue approvals whose job was lost, and hands approved
     * direct calls nobody ran to a new job (the claim keeps that from running anything twice).
     */
    async sweep(): Promise<{ expired: number; requeued: number }> {
      let expired = 0;
      for (const id of await repository.overduePendingIds(db, now(), SWEEP_BATCH)) {
        if (await expireNow(id)) expired += 1;
      }
      const stale = await repository.unexecutedApprovedIds(db, new Date(now().getTime() - EXECUTE_GRACE_MS), SWEEP_BATCH);
      for (const id of stale) await enqueueExecution(id, `approval-execute-${id}-${randomUUID()}`);
      return { expired, requeued: stale.length };
    },
  };
}

export type ApprovalService = ReturnType<typeof createApprovalService>;

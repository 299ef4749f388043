import { createHash, randomUUID } from 'node:crypto';
import type { JSONSchema7 } from 'json-schema';
import type { Db } from '../../db/client.js';
import type { ToolExecutionSource } from '../../db/schema/tools.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { canonicalJson, CanonicalJsonError } from '../../lib/canonical-json.js';
import { ConflictError, ForbiddenError, NotFoundError, UpstreamError, ValidationError, type FieldError } from '../../lib/errors.js';
import type { KeyValueStore } from '../../lib/infra/kv.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { ApprovalLifecycle, ApprovalService } from '../approvals/approvals.service.js';
import type { ApprovalRow } from '../approvals/approvals.repository.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import type {
  ChatToolCall,
  ChatToolContext,
  ChatToolDefinition,
  ChatToolOutcome,
  ChatToolRuntime,
  ResumedOutcome,
  ResumedToolCall,
} from '../chat/chat-tools.js';
import type { NotifyInput } from '../notifications/notifications.types.js';
import { EncryptedDataError, type FieldEncryptionService } from '../vault/field-cipher.js';
import { ToolRunError } from './builtins/index.js';
import { DEFAULT_EGRESS_TIMEOUT_MS, MAX_EGRESS_TIMEOUT_MS, type Allowlist } from './egress.js';
import { modelToolName } from './model-names.js';
import { createSecretScrubber, type SecretScrubber } from './secret-scrub.js';
import { describeFieldErrors, type ToolSchemaValidator } from './tool-schemas.js';
import type { NewToolExecutionRow, ToolExecutionRow, ToolRow, ToolsRepository } from './tools.repository.js';
import type { ToolRef, ToolRegistry } from './tools.service.js';
import type { ExecutorRegistry } from './executors/index.js';
import { isUniqueViolation } from './db-errors.js';

const EXECUTION_RESOURCE = 'tool_execution';
/**
 * A call `running` with no instance recorded (from before instances held leases) this long after it started was cut
 * off by a crash: the longest deadline is 2 minutes.
 */
const UNOWNED_STALE_MS = 10 * 60_000;
/** What the requester and the model are told of a call whose outcome was never recorded. */
export const INTERRUPTED_BY_CRASH =
  'the service instance running this call stopped before its outcome was recorded: it may or may not have taken effect. It is not retried automatically; check before calling it again';
export const INTERRUPTED_BY_SHUTDOWN =
  'the service shut down before the call answered: it may or may not have taken effect. It is not retried automatically; check before calling it again';
const ERROR_MAX_LENGTH = 500;

/** The one approval chain operation set the engine needs. */
export type ApprovalGate = Pick<
  ApprovalService,
  'approverIdsFor' | 'request' | 'find' | 'findReusable' | 'findUnacted' | 'loadForContinuation' | 'claim' | 'rejectionReason' | 'decryptArgs' | 'expire'
>;

export interface ToolSecrets {
  useSecret(name: string, options?: { consumer?: string; userId?: string | null }): Promise<string>;
}

export interface ToolEngineNotifier {
  notify(input: NotifyInput, uow?: UnitOfWork): Promise<unknown>;
}

export interface ToolEngineLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ToolEngineDeps {
  db: Db;
  repository: ToolsRepository;
  registry: Pick<ToolRegistry, 'resolveForUse' | 'requireLive' | 'findLiveById' | 'usableBy'>;
  audit: Pick<AuditRecorder, 'record' | 'recordMany'>;
  fieldCipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  kv: KeyValueStore;
  validator: ToolSchemaValidator;
  executors: ExecutorRegistry;
  allowlist: Allowlist;
  secrets: () => ToolSecrets | undefined;
  /** The approval chain registers after this module; it is resolved at call time. */
  approvals: () => ApprovalGate;
  /** Whether a user is still active with a role of at least `role` (an approved call runs only for such a requester). */
  requesterAllowed: (userId: string, role: Role) => Promise<boolean>;
  notifier: () => ToolEngineNotifier | undefined;
  /** This process's lease: running calls are recorded with its id, and it judges when another instance is gone. */
  instance: { id: string; leaseMs: number; mayJudgeOthers(): boolean };
  /** Aborts at the end of the shutdown grace period: a call still running then is recorded as interrupted. */
  shutdownDeadline?: AbortSignal;
  logger?: ToolEngineLogger;
  now?: () => Date;
}

export type ExecuteResult =
  | { execution_id: string; status: 'completed'; result: unknown; cached: boolean }
  | { execution_id: string; status: 'pending_approval'; approval_id: string };

/**
 * The outcome of a call made by an MCP client of CDSA's own MCP server (`POST /mcp`): a gated call says who was asked,
 * and what became of an earlier identical call's approval.
 */
export type ServedToolOutcome =
  | Exclude<ResumedOutcome, { status: 'pending_approval' }>
  | {
      status: 'pending_approval';
      execution_id: string;
      approval_id: string;
      approver_role: Role;
      approvals_required: number;
      /** The users told about the request (active, senior enough, not the requester). */
      approver_ids: string[];
      expires_at: string;
    };

/** What an MCP client of CDSA (`POST /mcp`) runs through the engine: the same pipeline as chat and the API. */
export interface ServedToolRuntime {
  /** The tools this actor may use, by the names models see (`server__tool`). */
  listForActor(actor: Actor): Promise<ChatToolDefinition[]>;
  /**
   * One call, bound to `bindingId` (the API key): a gated call creates its approval and answers `pending_approval`;
   * the same call (tool, canonical arguments, key) made again answers from that approval — still pending, rejected or
   * expired (reported once), or approved: then it runs, exactly once, and returns the result. A call made after that
   * is a new request.
   */
  call(actor: Actor, modelName: string, args: unknown, options: { bindingId: string; context: RequestContext }): Promise<ServedToolOutcome>;
}

export interface ExecutionView {
  id: string;
  tool_id: string;
  tool_name: string;
  status: ToolExecutionRow['status'];
  source: ToolExecutionSource;
  user_id: string;
  args: Record<string, unknown>;
  result: unknown;
  error: string | null;
  cached: boolean;
  approval_id: string | null;
  session_id: string | null;
  tool_call_id: string | null;
  duration_ms: number | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/** A call that ran (or tried to) and failed: a bad gateway for the client, naming the tool; the execution is stored. */
export class ToolExecutionFailedError extends UpstreamError {
  constructor(
    readonly toolName: string,
    readonly executionId: string,
    readonly reason: string,
    /** The outcome is unknown (the call was cut off), not a failure. */
    readonly interrupted = false,
  ) {
    super(`tool:${toolName}`, interrupted ? `The call of "${toolName}" was interrupted: ${reason}` : `The tool "${toolName}" failed: ${reason}`, interrupted);
    this.extensions.execution_id = executionId;
    if (interrupted) this.extensions.execution_status = 'interrupted';
  }
}

/** How a call that was run (or refused before running) ended. */
type RanOutcome = Exclude<ChatToolOutcome, { status: 'pending_approval' }>;

interface CallOptions {
  source: ToolExecutionSource;
  /** The way in, when it is not told by `source` alone: `mcp` for calls over CDSA's MCP server (source `api`). */
  channel?: 'mcp';
  context: RequestContext;
  sessionId: string | null;
  toolCallId: string | null;
}

interface Failure {
  code: string;
  message: string;
}

type Prepared =
  | { kind: 'ready'; tool: ToolRow; args: Record<string, unknown>; execution: ToolExecutionRow; approval: ApprovalRow }
  | { kind: 'refused'; execution: ToolExecutionRow; approval: ApprovalRow; failure: Failure };

export function executionArgsAad(executionId: string): string {
  return `tool_executions:${executionId}:args`;
}

export function executionResultAad(executionId: string): string {
  return `tool_executions:${executionId}:result`;
}

export function executionLink(toolId: string, executionId: string): string {
  return `/api/v1/tools/${toolId}/executions/${executionId}`;
}

/** SHA-256 (hex) of the RFC 8785 canonical JSON of the arguments: what an approval binds. */
export function argsDigest(args: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(args), 'utf8').digest('hex');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** An error as it may be logged once secrets were scrubbed from its message and stack. */
function scrubbedError(error: unknown, scrub: SecretScrubber): unknown {
  if (!scrub.active) return error;
  if (!(error instanceof Error)) return scrub.text(String(error));
  return { type: error.name, message: scrub.text(error.message), stack: error.stack === undefined ? undefined : scrub.text(error.stack) };
}

function truncate(text: string): string {
  return text.length > ERROR_MAX_LENGTH ? `${text.slice(0, ERROR_MAX_LENGTH)}…` : text;
}

/**
 * The execution pipeline, the same for the API and the model: tool exists and is enabled → the caller's role may use
 * it → arguments match `input_schema` → approval gate (a gated call is never cached) → cached result (per tool version,
 * arguments and user) → run under a deadline → result matches `output_schema` → execution stored (arguments and result
 * encrypted) → audited.
 *
 * A gated call is stored as `pending_approval` with its approval in one transaction. It runs later, once: leaving
 * `pending_approval` is a conditional update that only one caller (job, chat continuation, instance) can win, and the
 * run is refused when the tool or the arguments no longer match what was approved.
 */
export function createToolEngine(deps: ToolEngineDeps) {
  const { db, repository, registry, audit, fieldCipher, kv, validator, executors, allowlist } = deps;
  const now = deps.now ?? (() => new Date());

  function validateArgs(tool: ToolRow, args: unknown, pointerPrefix: string): Record<string, unknown> {
    if (!isPlainObject(args)) throw new ValidationError('The tool arguments are invalid', [{ pointer: pointerPrefix || '/', detail: 'must be an object' }]);
    const errors: FieldError[] = validator.validate(tool, 'input', tool.inputSchema, args, pointerPrefix);
    const executor = executors.get(tool.implementation.type);
    if (errors.length === 0 && executor?.checkArgs) errors.push(...executor.checkArgs(tool, args, { allowlist, validator, pointerPrefix }));
    if (errors.length > 0) throw new ValidationError('The tool arguments are invalid', errors);
    return args;
  }

  function digestOf(args: Record<string, unknown>, pointerPrefix: string): string {
    try {
      return argsDigest(args);
    } catch (error) {
      if (error instanceof CanonicalJsonError) {
        throw new ValidationError('The tool arguments are invalid', [{ pointer: `${pointerPrefix}${error.pointer}` || '/', detail: 'is not representable in JSON' }]);
      }
      throw error;
    }
  }

  function needsApproval(tool: ToolRow, args: Record<string, unknown>): boolean {
    if (tool.requiresApproval) return true;
    return tool.approvalWhen !== null && validator.matches(tool, 'approval_when', tool.approvalWhen, args);
  }

  function cacheKey(tool: ToolRow, userId: string, digest: string): string {
    // The user is part of the key: a cached result is never served to anyone but the user it was computed for.
    return `tools:result:${tool.id}:${tool.version}:${userId}:${digest}`;
  }

  async function cachedResult(tool: ToolRow, userId: string, digest: string): Promise<{ found: true; result: unknown } | { found: false }> {
    if (tool.cacheTtlSeconds === null) return { found: false };
    const key = cacheKey(tool, userId, digest);
    const stored = await kv.get(key).catch((error: unknown) => {
      deps.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'tool result cache unavailable');
      return null;
    });
    if (stored === null) return { found: false };
    try {
      return { found: true, result: JSON.parse(fieldCipher.decrypt(stored, key)) as unknown };
    } catch {
      await kv.del(key).catch(() => undefined);
      return { found: false };
    }
  }

  async function storeInCache(tool: ToolRow, userId: string, digest: string, result: unknown): Promise<void> {
    if (tool.cacheTtlSeconds === null) return;
    const key = cacheKey(tool, userId, digest);
    await kv
      .set(key, fieldCipher.encrypt(JSON.stringify(result), key), tool.cacheTtlSeconds)
      .catch((error: unknown) => deps.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not cache a tool result'));
  }

  function encryptArgs(executionId: string, args: Record<string, unknown>): string {
    return fieldCipher.encrypt(JSON.stringify(args), executionArgsAad(executionId));
  }

  function decryptArgs(row: ToolExecutionRow): Record<string, unknown> {
    const parsed: unknown = JSON.parse(fieldCipher.decrypt(row.encryptedArgs, executionArgsAad(row.id)));
    if (!isPlainObject(parsed)) throw new Error('stored tool arguments are not an object');
    return parsed;
  }

  function decryptResult(row: ToolExecutionRow): unknown {
    if (row.encryptedResult === null) return null;
    return JSON.parse(fieldCipher.decrypt(row.encryptedResult, executionResultAad(row.id))) as unknown;
  }

  function presentExecution(row: ToolExecutionRow): ExecutionView {
    return {
      id: row.id,
      tool_id: row.toolId,
      tool_name: row.toolName,
      status: row.status,
      source: row.source,
      user_id: row.userId,
      args: decryptArgs(row),
      result: decryptResult(row),
      error: row.error,
      cached: row.cached,
      approval_id: row.approvalId,
      session_id: row.sessionId,
      tool_call_id: row.toolCallId,
      duration_ms: row.durationMs,
      created_at: row.createdAt.toISOString(),
      started_at: row.startedAt ? row.startedAt.toISOString() : null,
      completed_at: row.completedAt ? row.completedAt.toISOString() : null,
    };
  }

  function callEvent(
    eventType: AuditEventInput['eventType'],
    actor: { userId: string; sessionId: string | null },
    context: RequestContext,
    executionId: string,
    details: Record<string, unknown>,
  ): AuditEventInput {
    return { eventType, userId: actor.userId, sessionId: actor.sessionId, resourceType: EXECUTION_RESOURCE, resourceId: executionId, details, context };
  }

  function baseDetails(tool: Pick<ToolRow, 'id' | 'name' | 'version'>, options: Partial<CallOptions> & { digest: string }): Record<string, unknown> {
    return {
      tool_id: tool.id,
      tool_name: tool.name,
      tool_version: tool.version,
      args_digest: options.digest,
      source: options.source,
      // An MCP call's binding is its API key (already in `api_key_id`), not a chat session.
      chat_session_id: options.channel ? null : (options.sessionId ?? null),
      tool_call_id: options.toolCallId ?? null,
      ...(options.channel ? { channel: options.channel } : {}),
    };
  }

  function initiatedEvent(actor: Actor, tool: ToolRow, executionId: string, digest: string, options: CallOptions, gating: Record<string, unknown>): AuditEventInput {
    return callEvent('TOOL_CALL_INITIATED', actor, options.context, executionId, { ...baseDetails(tool, { ...options, digest }), ...gating });
  }

  /** What every new execution row records: who called which tool version, with which (encrypted) arguments, from where. */
  function executionColumns(executionId: string, tool: ToolRow, actor: Actor, args: Record<string, unknown>, digest: string, options: CallOptions) {
    return {
      id: executionId,
      toolId: tool.id,
      toolName: tool.name,
      toolVersion: tool.version,
      userId: actor.userId,
      source: options.source,
      sessionId: options.sessionId,
      toolCallId: options.toolCallId,
      encryptedArgs: encryptArgs(executionId, args),
      argsDigest: digest,
    } satisfies Partial<NewToolExecutionRow>;
  }

  async function useSecret(name: string, userId: string, toolName: string): Promise<string> {
    const secrets = deps.secrets();
    if (!secrets) throw new ToolRunError('secret_unavailable', 'the vault is not available');
    try {
      return await secrets.useSecret(name, { consumer: `tool:${toolName}`, userId });
    } catch (error) {
      if (error instanceof NotFoundError) throw new ToolRunError('secret_missing', `the vault secret "${name}" does not exist`);
      throw error;
    }
  }

  /** Runs the implementation under the tool's deadline and checks the result; never throws for the tool's own faults. */
  async function run(tool: ToolRow, args: Record<string, unknown>, executionId: string, userId: string, approvalId: string | null = null): Promise<RunOutcome> {
    const started = performance.now();
    const timeoutMs = Math.min(tool.implementation.timeout_ms ?? DEFAULT_EGRESS_TIMEOUT_MS, MAX_EGRESS_TIMEOUT_MS);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new ToolRunError('timeout', `no result within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const elapsed = () => Math.round(performance.now() - started);
    // Every secret the run used is scrubbed (raw and encoded) from whatever leaves it: result, error, log.
    const used: string[] = [];
    const scrubber = () => createSecretScrubber(used);
    // Shutting down and out of grace: stop waiting. Whatever the call did is unknown, and recorded as such.
    let onShutdown: (() => void) | undefined;
    const shutdown = new Promise<never>((_, reject) => {
      onShutdown = () => {
        controller.abort();
        reject(new ToolRunError('interrupted', INTERRUPTED_BY_SHUTDOWN));
      };
      if (deps.shutdownDeadline?.aborted) onShutdown();
      else deps.shutdownDeadline?.addEventListener('abort', onShutdown, { once: true });
    });
    shutdown.catch(() => undefined);
    try {
      const secretFor = async (name: string): Promise<string> => {
        const value = await useSecret(name, userId, tool.name);
        used.push(value);
        return value;
      };
      const executor = executors.get(tool.implementation.type);
      if (!executor) throw new ToolRunError('kind_unavailable', `tools of kind "${tool.implementation.type}" cannot run in this version`);
      const work = executor.run(tool, args, { executionId, userId, approvalId, signal: controller.signal, allowlist, useSecret: secretFor });
      const result = scrubber().deep(await Promise.race([work, deadline, shutdown]));
      if (tool.outputSchema !== null) {
        const errors = validator.validate(tool, 'output', tool.outputSchema, result);
        if (errors.length > 0) {
          return { ok: false, failure: { code: 'invalid_output', message: `the result does not match the output schema (${describeFieldErrors(errors)})` }, durationMs: elapsed() };
        }
      }
      if (result === undefined) return { ok: true, result: null, durationMs: elapsed() };
      return { ok: true, result, durationMs: elapsed() };
    } catch (error) {
      const scrub = scrubber();
      if (error instanceof ToolRunError) return { ok: false, failure: { code: error.code, message: scrub.text(error.message) }, durationMs: elapsed() };
      deps.logger?.error({ err: scrubbedError(error, scrub), tool: tool.name, execution_id: executionId }, 'tool implementation failed unexpectedly');
      return { ok: false, failure: { code: 'internal_error', message: 'the tool failed unexpectedly' }, durationMs: elapsed() };
    } finally {
      clearTimeout(timer);
      if (onShutdown) deps.shutdownDeadline?.removeEventListener('abort', onShutdown);
      controller.abort();
    }
  }

  type RunOutcome = { ok: true; result: unknown; durationMs: number } | { ok: false; failure: Failure; durationMs: number };

  function endEvent(
    tool: Pick<ToolRow, 'id' | 'name' | 'version'>,
    executionId: string,
    approvalId: string | null,
    actor: { userId: string; sessionId: string | null },
    context: RequestContext,
    outcome: RunOutcome,
  ): AuditEventInput {
    const details: Record<string, unknown> = {
      tool_id: tool.id,
      tool_name: tool.name,
      tool_version: tool.version,
      duration_ms: outcome.durationMs,
      approval_id: approvalId,
      cached: false,
    };
    if (!outcome.ok) {
      details.error_code = outcome.failure.code;
      details.error = truncate(outcome.failure.message);
      if (isInterrupted(outcome)) details.outcome = 'unknown';
    }
    return callEvent(outcome.ok ? 'TOOL_CALL_COMPLETED' : 'TOOL_CALL_FAILED', actor, context, executionId, details);
  }

  function isInterrupted(outcome: RunOutcome): boolean {
    return !outcome.ok && outcome.failure.code === 'interrupted';
  }

  function outcomeColumns(executionId: string, outcome: RunOutcome) {
    return {
      status: outcome.ok ? ('completed' as const) : isInterrupted(outcome) ? ('interrupted' as const) : ('failed' as const),
      encryptedResult: outcome.ok ? fieldCipher.encrypt(JSON.stringify(outcome.result), executionResultAad(executionId)) : null,
      error: outcome.ok ? null : truncate(outcome.failure.message),
      durationMs: outcome.durationMs,
      completedAt: now(),
    };
  }

  /** Stores how a running call ended and audits it, in one transaction (plus whatever `also` adds to it). */
  async function finish(
    tool: Pick<ToolRow, 'id' | 'name' | 'version'>,
    execution: { id: string; userId: string; approvalId: string | null },
    actor: { userId: string; sessionId: string | null },
    context: RequestContext,
    outcome: RunOutcome,
    also?: (uow: UnitOfWork) => Promise<void>,
  ): Promise<void> {
    await withTransaction(
      db,
      async (uow) => {
        const finished = await repository.finishExecution(uow.tx, execution.id, outcomeColumns(execution.id, outcome), deps.instance.id);
        if (!finished) throw new ConflictError('The execution was no longer running');
        if (also) await also(uow);
        await audit.record(uow.tx, endEvent(tool, execution.id, execution.approvalId, actor, context, outcome));
      },
      deps.logger,
    );
  }

  /** A built-in that changes nothing outside this process: run first, then recorded once (run, row and audit). */
  function isPure(tool: ToolRow): boolean {
    return executors.get(tool.implementation.type)?.isPure?.(tool) === true;
  }

  function completedOrThrow(tool: ToolRow, executionId: string, outcome: RunOutcome): ExecuteResult {
    if (!outcome.ok) throw new ToolExecutionFailedError(tool.name, executionId, outcome.failure.message, isInterrupted(outcome));
    return { execution_id: executionId, status: 'completed', result: outcome.result, cached: false };
  }

  /** A call that needs no approval: stored and audited as initiated, run, then stored and audited with its outcome. */
  async function runNow(actor: Actor, tool: ToolRow, args: Record<string, unknown>, digest: string, options: CallOptions): Promise<ExecuteResult> {
    const executionId = randomUUID();
    const initiated = () => initiatedEvent(actor, tool, executionId, digest, options, { requires_approval: false });
    if (isPure(tool)) {
      const startedAt = now();
      const outcome = await run(tool, args, executionId, actor.userId);
      // Fail closed all the same: if the record cannot be written, the caller gets no result.
      await withTransaction(
        db,
        async (uow) => {
          await repository.insertExecution(uow.tx, {
            ...executionColumns(executionId, tool, actor, args, digest, options),
            createdAt: startedAt,
            startedAt,
            ...outcomeColumns(executionId, outcome),
          });
          await audit.recordMany(uow.tx, [initiated(), endEvent(tool, executionId, null, actor, options.context, outcome)]);
        },
        deps.logger,
      );
      const result = completedOrThrow(tool, executionId, outcome);
      await storeInCache(tool, actor.userId, digest, outcome.ok ? outcome.result : null);
      return result;
    }
    // Anything that may change the world is on record before it runs.
    await withTransaction(
      db,
      async (uow) => {
        await repository.insertExecution(uow.tx, {
          ...executionColumns(executionId, tool, actor, args, digest, options),
          status: 'running',
          instanceId: deps.instance.id,
          createdAt: now(),
          startedAt: now(),
        });
        await audit.record(uow.tx, initiated());
      },
      deps.logger,
    );
    const outcome = await run(tool, args, executionId, actor.userId);
    await finish(tool, { id: executionId, userId: actor.userId, approvalId: null }, actor, options.context, outcome);
    const result = completedOrThrow(tool, executionId, outcome);
    await storeInCache(tool, actor.userId, digest, outcome.ok ? outcome.result : null);
    return result;
  }

  async function recordCacheHit(actor: Actor, tool: ToolRow, args: Record<string, unknown>, digest: string, result: unknown, options: CallOptions): Promise<ExecuteResult> {
    const executionId = randomUUID();
    const at = now();
    await withTransaction(
      db,
      async (uow) => {
        await repository.insertExecution(uow.tx, {
          ...executionColumns(executionId, tool, actor, args, digest, options),
          status: 'completed',
          encryptedResult: fieldCipher.encrypt(JSON.stringify(result), executionResultAad(executionId)),
          cached: true,
          durationMs: 0,
          createdAt: at,
          startedAt: at,
          completedAt: at,
        });
        await audit.recordMany(uow.tx, [
          initiatedEvent(actor, tool, executionId, digest, options, { requires_approval: false }),
          callEvent('TOOL_CALL_COMPLETED', actor, options.context, executionId, { tool_id: tool.id, tool_name: tool.name, tool_version: tool.version, duration_ms: 0, approval_id: null, cached: true }),
        ]);
      },
      deps.logger,
    );
    return { execution_id: executionId, status: 'completed', result, cached: true };
  }

  /** A gated call: stored as pending with its approval (approvers notified, expiry scheduled), in one transaction. */
  async function requestApproval(actor: Actor, tool: ToolRow, args: Record<string, unknown>, digest: string, options: CallOptions): Promise<ExecuteResult> {
    const gate = deps.approvals();
    // The same call already waiting for approval in this chat session is answered by that approval.
    const reusable = async (sessionId: string): Promise<ExecuteResult | undefined> => {
      const existing = await gate.findReusable({ sessionId, toolId: tool.id, argsDigest: digest, requesterId: actor.userId });
      return existing ? { execution_id: existing.executionId, status: 'pending_approval', approval_id: existing.id } : undefined;
    };
    if (options.sessionId !== null) {
      const existing = await reusable(options.sessionId);
      if (existing) return existing;
    }
    const notifyUserIds = await gate.approverIdsFor(tool.approverRole, actor.userId);
    const executionId = randomUUID();
    const approvalId = randomUUID();
    try {
      await withTransaction(
        db,
        async (uow) => {
          await repository.insertExecution(uow.tx, {
            ...executionColumns(executionId, tool, actor, args, digest, options),
            status: 'pending_approval',
            approvalId,
            createdAt: now(),
          });
          await gate.request(uow, {
            approvalId,
            tool: { id: tool.id, name: tool.name, version: tool.version, approvalsRequired: tool.approvalsRequired, approverRole: tool.approverRole },
            args,
            argsDigest: digest,
            requester: actor,
            executionId,
            sessionId: options.sessionId,
            toolCallId: options.toolCallId,
            notifyUserIds,
            context: options.context,
          });
          await audit.record(uow.tx, initiatedEvent(actor, tool, executionId, digest, options, { requires_approval: true, approval_id: approvalId }));
        },
        deps.logger,
      );
    } catch (error) {
      // The same call proposed concurrently in one chat session: the other request's approval stands.
      if (options.sessionId !== null && isUniqueViolation(error)) {
        const existing = await reusable(options.sessionId);
        if (existing) return existing;
      }
      throw error;
    }
    return { execution_id: executionId, status: 'pending_approval', approval_id: approvalId };
  }

  async function execute(actor: Actor, ref: ToolRef, rawArgs: unknown, options: CallOptions, pointerPrefix: string): Promise<ExecuteResult> {
    const tool = await registry.resolveForUse(actor, ref);
    const args = validateArgs(tool, rawArgs, pointerPrefix);
    const digest = digestOf(args, pointerPrefix);
    // A gated call's result is released once per approval: it is never answered from, or written to, the cache.
    if (needsApproval(tool, args)) return requestApproval(actor, tool, args, digest, options);
    const cached = await cachedResult(tool, actor.userId, digest);
    if (cached.found) return recordCacheHit(actor, tool, args, digest, cached.result, options);
    return runNow(actor, tool, args, digest, options);
  }

  /**
   * Claims an approved call and checks it still is what was approved: the same tool definition, and arguments whose
   * canonical digest is the approved one (in the approval and in the execution). A mismatch is recorded as a refused
   * run. Returns undefined when another caller already claimed it.
   */
  async function claimApproved(
    approvalId: string,
    filter: { sessionId: string | null; requesterId?: string },
    onRefused?: (uow: UnitOfWork, prepared: Extract<Prepared, { kind: 'refused' }>) => Promise<void>,
  ): Promise<Prepared | undefined> {
    const gate = deps.approvals();
    // Read before the transaction (the identity module queries on its own): may the requester still use the tool?
    const requested = await gate.find(approvalId);
    if (!requested || requested.status !== 'APPROVED' || requested.continuedAt !== null) return undefined;
    const requestedTool = await registry.findLiveById(db, requested.toolId);
    const requesterAllowed = requestedTool ? await deps.requesterAllowed(requested.requesterId, requestedTool.requiredRole) : false;
    return withTransaction(
      db,
      async (uow): Promise<Prepared | undefined> => {
        const approval = await gate.claim(uow, approvalId, { ...filter, statuses: ['APPROVED'] });
        if (!approval) return undefined;
        const execution = await repository.claimPendingExecution(uow.tx, approval.executionId, now(), deps.instance.id);
        if (!execution) return undefined;
        let failure: Failure | undefined;
        let args: Record<string, unknown> = {};
        const tool = await registry.findLiveById(uow.tx, approval.toolId);
        if (!tool || !tool.isEnabled) {
          failure = { code: 'tool_unavailable', message: 'the tool was removed or disabled after the approval' };
        } else if (tool.version !== approval.toolVersion || execution.toolVersion !== approval.toolVersion) {
          failure = { code: 'tool_changed', message: 'the tool definition changed after the approval; request the call again' };
        } else if (!requesterAllowed || requestedTool?.requiredRole !== tool.requiredRole) {
          failure = { code: 'requester_not_allowed', message: 'the requester may no longer use this tool (deactivated, or their role changed)' };
        } else {
          try {
            args = decryptArgs(execution);
            const approvedArgs = gate.decryptArgs(approval);
            if (execution.toolId !== approval.toolId || execution.argsDigest !== approval.argsDigest || argsDigest(args) !== approval.argsDigest || argsDigest(approvedArgs) !== approval.argsDigest) {
              failure = { code: 'arguments_changed', message: 'the arguments differ from the approved ones; the call was refused' };
            }
          } catch (error) {
            if (!(error instanceof EncryptedDataError) && !(error instanceof SyntaxError) && !(error instanceof CanonicalJsonError)) throw error;
            failure = { code: 'arguments_changed', message: 'the stored arguments could not be verified against the approval; the call was refused' };
          }
        }
        if (failure || !tool) {
          const refusal = failure ?? { code: 'tool_unavailable', message: 'the tool is not available' };
          await repository.finishExecution(uow.tx, execution.id, { status: 'failed', encryptedResult: null, error: refusal.message, durationMs: 0, completedAt: now() });
          const prepared = { kind: 'refused' as const, execution, approval, failure: refusal };
          if (onRefused) await onRefused(uow, prepared);
          await audit.record(
            uow.tx,
            callEvent('TOOL_CALL_FAILED', { userId: approval.requesterId, sessionId: null }, SYSTEM_CONTEXT, execution.id, {
              tool_id: approval.toolId,
              tool_name: approval.toolName,
              tool_version: approval.toolVersion,
              approval_id: approval.id,
              error_code: refusal.code,
              error: refusal.message,
              duration_ms: 0,
              cached: false,
            }),
          );
          return prepared;
        }
        return { kind: 'ready', tool, args, execution, approval };
      },
      deps.logger,
    );
  }

  function resultNotice(approval: ApprovalRow, executionId: string, status: 'completed' | 'failed', error: string | null): NotifyInput {
    const link = executionLink(approval.toolId, executionId);
    return {
      userId: approval.requesterId,
      type: 'LONG_RUNNING_TASK_COMPLETED',
      title: status === 'completed' ? `Tool run completed: ${approval.toolName}` : `Tool run failed: ${approval.toolName}`,
      message:
        status === 'completed'
          ? `Your approved call of "${approval.toolName}" has run. The result: ${link}`
          : `Your approved call of "${approval.toolName}" did not complete: ${error ?? 'unknown error'}. Details: ${link}`,
      priority: 'normal',
      data: { approval_id: approval.id, execution_id: executionId, tool_id: approval.toolId, tool_name: approval.toolName, status, link },
    };
  }

  async function notifyInUow(uow: UnitOfWork, input: NotifyInput): Promise<void> {
    const notifier = deps.notifier();
    if (notifier) await notifier.notify(input, uow);
  }

  /** Runs a claimed, verified call and stores its outcome. */
  async function runPrepared(
    prepared: Extract<Prepared, { kind: 'ready' }>,
    notifyRequester: boolean,
    by?: { actor: Actor; context: RequestContext },
  ): Promise<RanOutcome> {
    const { tool, args, execution, approval } = prepared;
    const outcome = await run(tool, args, execution.id, approval.requesterId, approval.id);
    const requester = by ? by.actor : { userId: approval.requesterId, sessionId: null };
    await finish(tool, { id: execution.id, userId: approval.requesterId, approvalId: approval.id }, requester, by?.context ?? SYSTEM_CONTEXT, outcome, async (uow) => {
      if (notifyRequester) await notifyInUow(uow, resultNotice(approval, execution.id, outcome.ok ? 'completed' : 'failed', outcome.ok ? null : outcome.failure.message));
    });
    if (!outcome.ok) {
      return { status: isInterrupted(outcome) ? 'interrupted' : 'failed', execution_id: execution.id, error: outcome.failure.message };
    }
    return { status: 'completed', execution_id: execution.id, result: outcome.result, cached: false };
  }

  /** Turns what the pipeline refuses into a failure the model can read; infrastructure errors still throw. */
  function failedOutcome(error: unknown, toolName: string): Extract<ChatToolOutcome, { status: 'failed' | 'interrupted' }> {
    if (error instanceof ToolExecutionFailedError) {
      return { status: error.interrupted ? 'interrupted' : 'failed', execution_id: error.executionId, error: error.reason };
    }
    if (error instanceof NotFoundError) return { status: 'failed', execution_id: null, error: `There is no tool named "${toolName}" available to you.` };
    if (error instanceof ValidationError) {
      return { status: 'failed', execution_id: null, error: `The arguments are invalid: ${describeFieldErrors(error.errors)}` };
    }
    if (error instanceof ForbiddenError || error instanceof ConflictError) return { status: 'failed', execution_id: null, error: error.message };
    throw error;
  }

  /** A call refused before any execution existed (unknown tool, role, schema): audited without one. */
  async function auditRefusedCall(actor: Actor, details: Record<string, unknown>, context: RequestContext | undefined): Promise<void> {
    await withTransaction(
      db,
      async (uow) => {
        await audit.record(uow.tx, {
          eventType: 'TOOL_CALL_FAILED',
          userId: actor.userId,
          sessionId: actor.sessionId,
          resourceType: EXECUTION_RESOURCE,
          resourceId: null,
          details: { ...details, error_code: 'refused' },
          context,
        });
      },
      deps.logger,
    );
  }

  async function auditRefusedChatCall(actor: Actor, call: ChatToolCall, context: ChatToolContext, outcome: Extract<ChatToolOutcome, { status: 'failed' }>): Promise<void> {
    await auditRefusedCall(actor, { tool_name: call.toolName.slice(0, 100), source: 'chat', chat_session_id: context.sessionId, tool_call_id: call.toolCallId, error: outcome.error }, context.requestContext);
  }

  /**
   * The outcome of an approved call whose continuation was claimed earlier but never stored in the chat (the instance
   * serving it died): what the execution records, `interrupted` once recovery resolved it. The chat checks it was not
   * answered yet; this never runs anything.
   */
  async function recordedOutcome(approval: ApprovalRow): Promise<ChatToolOutcome> {
    if (approval.status !== 'APPROVED') throw new ConflictError('This approval has already been continued');
    const execution = await repository.findExecution(db, approval.executionId);
    if (!execution) throw new ConflictError('This approval has already been continued');
    switch (execution.status) {
      case 'completed':
        return { status: 'completed', execution_id: execution.id, result: decryptResult(execution), cached: false };
      case 'failed':
        return { status: 'failed', execution_id: execution.id, error: execution.error ?? 'the tool failed' };
      case 'interrupted':
        return { status: 'interrupted', execution_id: execution.id, error: execution.error ?? INTERRUPTED_BY_CRASH };
      default: {
        const retry = new ConflictError('The approved call is still running; its outcome is not known yet, retry shortly');
        retry.headers['Retry-After'] = String(Math.max(1, Math.ceil(deps.instance.leaseMs / 1000)));
        throw retry;
      }
    }
  }

  const chatTools: ChatToolRuntime = {
    async listForActor(actor) {
      const rows = await registry.usableBy(actor);
      return rows.map(
        (row): ChatToolDefinition => ({
          name: modelToolName(row.name),
          description: row.description,
          input_schema: row.inputSchema as JSONSchema7,
        }),
      );
    },

    async executeFromChat(actor, call, context) {
      try {
        const offered = (await registry.usableBy(actor)).find((row) => modelToolName(row.name) === call.toolName);
        return await execute(
          actor,
          { name: offered?.name ?? call.toolName },
          call.args,
          { source: 'chat', context: context.requestContext, sessionId: context.sessionId, toolCallId: call.toolCallId },
          '',
        );
      } catch (error) {
        const outcome = failedOutcome(error, call.toolName);
        // Refused before anything ran (unknown tool, role, arguments): recorded, as the model may have been steered.
        if (outcome.status === 'failed' && outcome.execution_id === null) await auditRefusedChatCall(actor, call, context, outcome);
        return outcome;
      }
    },

    async resumeApproval(actor, approvalId, context, options = {}): Promise<ResumedToolCall> {
      const gate = deps.approvals();
      const approval = await gate.loadForContinuation(actor, approvalId, context.sessionId, { includeContinued: options.resultNotStored === true });
      const args = gate.decryptArgs(approval);
      const call = { toolCallId: approval.toolCallId ?? approval.id, toolName: modelToolName(approval.toolName), args };
      if (approval.continuedAt !== null) return { ...call, outcome: await recordedOutcome(approval) };
      if (approval.status === 'APPROVED') {
        const prepared = await claimApproved(approval.id, { sessionId: context.sessionId, requesterId: actor.userId });
        if (!prepared) throw new ConflictError('This approval has already been continued');
        if (prepared.kind === 'refused') {
          return { ...call, outcome: { status: 'failed', execution_id: prepared.execution.id, error: prepared.failure.message } };
        }
        return { ...call, outcome: await runPrepared(prepared, false) };
      }
      const claimed = await withTransaction(db, (uow) => gate.claim(uow, approval.id, { sessionId: context.sessionId, requesterId: actor.userId, statuses: ['REJECTED', 'EXPIRED'] }), deps.logger);
      if (!claimed) throw new ConflictError('This approval has already been continued');
      const reason = claimed.status === 'REJECTED' ? await gate.rejectionReason(claimed.id) : 'the approval expired before anyone decided';
      return {
        ...call,
        outcome: { status: claimed.status === 'REJECTED' ? 'rejected' : 'expired', execution_id: claimed.executionId, reason },
      };
    },
  };

  async function auditRefusedServedCall(actor: Actor, modelName: string, context: RequestContext, error: string): Promise<void> {
    await auditRefusedCall(actor, { tool_name: modelName.slice(0, 100), source: 'api', channel: 'mcp', error }, context);
  }

  async function pendingOutcome(actor: Actor, approval: ApprovalRow): Promise<ServedToolOutcome> {
    return {
      status: 'pending_approval',
      execution_id: approval.executionId,
      approval_id: approval.id,
      approver_role: approval.approverRole,
      approvals_required: approval.approvalsRequired,
      approver_ids: await deps.approvals().approverIdsFor(approval.approverRole, actor.userId),
      expires_at: approval.expiresAt.toISOString(),
    };
  }

  /** A gated call from an MCP client: answered from the newest approval of the same call, or a new request. */
  async function servedGatedCall(actor: Actor, tool: ToolRow, args: Record<string, unknown>, digest: string, options: CallOptions & { sessionId: string }): Promise<ServedToolOutcome> {
    const gate = deps.approvals();
    const key = { sessionId: options.sessionId, toolId: tool.id, argsDigest: digest, requesterId: actor.userId };
    let earlier = await gate.findUnacted(key);
    if (earlier?.status === 'PENDING' && earlier.expiresAt.getTime() <= now().getTime()) {
      // Overdue and its expiry job not run yet: it expires now, and this call is told so.
      await gate.expire(earlier.id);
      earlier = await gate.find(earlier.id);
    }
    if (!earlier) {
      const requested = await requestApproval(actor, tool, args, digest, options);
      const row = requested.status === 'pending_approval' ? await gate.find(requested.approval_id) : undefined;
      if (!row) throw new ConflictError('The approval request could not be read back; call again');
      return pendingOutcome(actor, row);
    }
    if (earlier.status === 'PENDING') return pendingOutcome(actor, earlier);
    if (earlier.status === 'APPROVED') {
      const prepared = await claimApproved(earlier.id, { sessionId: options.sessionId, requesterId: actor.userId });
      if (!prepared) {
        return { status: 'failed', execution_id: earlier.executionId, error: 'Another request of this key is running the approved call; its result goes to that request' };
      }
      if (prepared.kind === 'refused') return { status: 'failed', execution_id: prepared.execution.id, error: prepared.failure.message };
      return runPrepared(prepared, false, { actor, context: options.context });
    }
    const closed = earlier;
    await withTransaction(db, (uow) => gate.claim(uow, closed.id, { sessionId: options.sessionId, requesterId: actor.userId, statuses: ['REJECTED', 'EXPIRED'] }), deps.logger);
    if (closed.status === 'REJECTED') return { status: 'rejected', execution_id: closed.executionId, reason: await gate.rejectionReason(closed.id) };
    return { status: 'expired', execution_id: closed.executionId, reason: 'the approval expired before anyone decided' };
  }

  const served: ServedToolRuntime = {
    listForActor: (actor) => chatTools.listForActor(actor),

    async call(actor, modelName, rawArgs, { bindingId, context }) {
      const options = { source: 'api' as const, channel: 'mcp' as const, context, sessionId: bindingId, toolCallId: null };
      try {
        const offered = (await registry.usableBy(actor)).find((row) => modelToolName(row.name) === modelName);
        if (!offered) throw new NotFoundError('Tool');
        const tool = await registry.resolveForUse(actor, { name: offered.name });
        const args = validateArgs(tool, rawArgs, '');
        const digest = digestOf(args, '');
        if (needsApproval(tool, args)) return await servedGatedCall(actor, tool, args, digest, options);
        const done = await execute(actor, { name: tool.name }, args, options, '');
        if (done.status === 'completed') return done;
        // Only a definition changed between the two reads gets here.
        return pendingOutcome(actor, (await deps.approvals().find(done.approval_id))!);
      } catch (error) {
        const outcome = failedOutcome(error, modelName);
        if (outcome.status === 'failed' && outcome.execution_id === null) await auditRefusedServedCall(actor, modelName, context, outcome.error);
        return outcome;
      }
    },
  };

  const lifecycle: ApprovalLifecycle = {
    async onClosed(uow, approval, outcome) {
      const status = outcome === 'REJECTED' ? 'rejected' : 'expired';
      const message = outcome === 'REJECTED' ? 'the approval was rejected; the call did not run' : 'the approval expired; the call did not run';
      const closed = await repository.closePendingExecution(uow.tx, approval.executionId, status, message, now());
      if (!closed) return [];
      return [
        callEvent('TOOL_CALL_FAILED', { userId: approval.requesterId, sessionId: null }, SYSTEM_CONTEXT, closed.id, {
          tool_id: approval.toolId,
          tool_name: approval.toolName,
          tool_version: approval.toolVersion,
          approval_id: approval.id,
          error_code: outcome === 'REJECTED' ? 'approval_rejected' : 'approval_expired',
          error: message,
          duration_ms: 0,
          cached: false,
        }),
      ];
    },
  };

  function canSeeAllExecutions(actor: Actor): boolean {
    return hasPermission(actor.role, 'approvals:decide');
  }

  return {
    chatTools,
    served,
    lifecycle,

    /** `POST /tools/{id}/execute`: 200 with the result, or 202 pending approval; 4xx as the pipeline refuses. */
    async execute(actor: Actor, ref: ToolRef, args: unknown, context: RequestContext): Promise<ExecuteResult> {
      return execute(actor, ref, args, { source: 'api', context, sessionId: null, toolCallId: null }, '/args');
    },

    /**
     * The `approvals.execute` job: runs an approved direct call once, then tells the requester where the result is.
     * Idempotent: a retried or duplicated job finds the call already claimed and does nothing.
     */
    async runApproved(approvalId: string): Promise<void> {
      const prepared = await claimApproved(approvalId, { sessionId: null }, async (uow, refused) => {
        await notifyInUow(uow, resultNotice(refused.approval, refused.execution.id, 'failed', refused.failure.message));
      });
      if (!prepared || prepared.kind === 'refused') return;
      await runPrepared(prepared, true);
    },

    async listExecutions(actor: Actor, ref: ToolRef, query: { limit?: number; cursor?: string }): Promise<Page<ExecutionView>> {
      const tool = await registry.requireLive(ref);
      const limit = clampLimit(query.limit);
      const key = decodeCursor(query.cursor, { t: 'timestamp', id: 'uuid' });
      const before = key && { createdAt: new Date(key.t), id: key.id };
      const rows = await repository.listExecutions(db, { toolId: tool.id, userId: canSeeAllExecutions(actor) ? null : actor.userId, before, limit: limit + 1 });
      return toPage(rows, limit, (row) => ({ t: row.createdAt.toISOString(), id: row.id }), presentExecution);
    },

    /** One execution: the caller's own, or any for approvers and admins; otherwise it does not exist. */
    async getExecution(actor: Actor, ref: ToolRef, executionId: string): Promise<ExecutionView> {
      const tool = await registry.requireLive(ref);
      const row = await repository.findExecution(db, executionId);
      if (!row || row.toolId !== tool.id || (row.userId !== actor.userId && !canSeeAllExecutions(actor))) throw new NotFoundError('Execution');
      return presentExecution(row);
    },

    /**
     * Crash recovery, on every instance's heartbeat: calls left running by an instance that is gone are resolved as
     * `interrupted` (never re-run), audited, and their requesters told. Returns how many.
     */
    async recoverInterrupted(): Promise<number> {
      const judgeOthers = deps.instance.mayJudgeOthers();
      const recovered = await withTransaction(
        db,
        async (uow) => {
          const rows = await repository.interruptOrphaned(uow.tx, {
            selfId: deps.instance.id,
            leaseMs: deps.instance.leaseMs,
            judgeOthers,
            unownedStartedBefore: new Date(now().getTime() - UNOWNED_STALE_MS),
            error: INTERRUPTED_BY_CRASH,
            now: now(),
          });
          await audit.recordMany(
            uow.tx,
            rows.map((row) =>
              callEvent('TOOL_CALL_FAILED', { userId: row.userId, sessionId: null }, SYSTEM_CONTEXT, row.id, {
                tool_id: row.toolId,
                tool_name: row.toolName,
                tool_version: row.toolVersion,
                approval_id: row.approvalId,
                error_code: 'interrupted',
                error: INTERRUPTED_BY_CRASH,
                outcome: 'unknown',
                instance_id: row.instanceId,
                cached: false,
              }),
            ),
          );
          for (const row of rows) await notifyInUow(uow, interruptedNotice(row));
          return rows.length;
        },
        deps.logger,
      );
      // Leases of instances gone long ago are of no more use once their calls are resolved.
      if (judgeOthers) await repository.forgetGoneInstances(db, deps.instance.leaseMs * 10);
      return recovered;
    },
  };
}

function interruptedNotice(row: ToolExecutionRow): NotifyInput {
  const link = executionLink(row.toolId, row.id);
  return {
    userId: row.userId,
    type: 'LONG_RUNNING_TASK_COMPLETED',
    title: `Tool run interrupted: ${row.toolName}`,
    message: `Your call of "${row.toolName}" was interrupted: ${INTERRUPTED_BY_CRASH}. Details: ${link}`,
    priority: 'high',
    data: { approval_id: row.approvalId, execution_id: row.id, tool_id: row.toolId, tool_name: row.toolName, status: 'interrupted', link, session_id: row.sessionId },
  };
}

export type ToolEngine = ReturnType<typeof createToolEngine>;

import type { JsonSchemaDocument, ToolImplementation, ToolImplementationType } from '../../../db/schema/tools.js';
import type { FieldError } from '../../../lib/errors.js';
import type { Allowlist } from '../egress.js';
import type { ToolSchemaValidator } from '../tool-schemas.js';
import type { ToolRow } from '../tools.repository.js';

/** What the engine hands an executor for one run; everything else (deadline, scrubbing, storage, audit) stays in the engine. */
export interface ExecutorRunContext {
  executionId: string;
  /** The user the call runs for (the requester). */
  userId: string;
  /** The approval this run was claimed under; null for a call that ran without one. */
  approvalId: string | null;
  /** Aborted when the execution's deadline passes or the service shuts down. */
  signal: AbortSignal;
  allowlist: Allowlist;
  /** Resolves a vault secret server-side; the value must never be returned, logged or audited (the engine scrubs it). */
  useSecret(name: string): Promise<string>;
}

/** What a kind fills in where the administrator gave nothing (a built-in's own schemas and description). */
export interface ImplementationDefaults {
  description?: string;
  inputSchema?: JsonSchemaDocument;
  outputSchema?: JsonSchemaDocument | null;
  requiresApproval?: boolean;
}

export interface ValidateContext {
  allowlist: Allowlist;
}

export interface CheckArgsContext {
  allowlist: Allowlist;
  validator: ToolSchemaValidator;
  /** Where the arguments sit in the request (`/args` on the API, empty for the model): errors point below it. */
  pointerPrefix: string;
}

/**
 * One kind of tool implementation (`implementation.type`). The engine owns the pipeline around every kind (role →
 * schema → cache → approval → run → output check → store → audit); a kind only says whether its configuration is
 * sound and how one call runs.
 */
export interface ToolExecutor {
  type: ToolImplementationType;
  /**
   * Checks an implementation configuration when a tool is registered or changed: field errors with pointers under
   * `/implementation`. Options common to every kind (`secret_name`, `timeout_ms`, …) are checked by the registry.
   */
  validate(implementation: ToolImplementation, context: ValidateContext): FieldError[];
  /** Options of `implementation` (besides `type`) this kind accepts for this configuration. */
  options(implementation: ToolImplementation): readonly string[];
  /** Defaults this kind supplies for a new tool's definition. */
  defaults?(implementation: ToolImplementation): ImplementationDefaults;
  /**
   * Argument checks beyond the tool's `input_schema`, made before the approval gate (pointers relative to the
   * arguments), so nobody is asked to approve a call that could never run.
   */
  checkArgs?(tool: ToolRow, args: Record<string, unknown>, context: CheckArgsContext): FieldError[];
  /** A call changes nothing outside this process: it is recorded once, after it ran. */
  isPure?(tool: ToolRow): boolean;
  /** Runs one call; throws ToolRunError for failures whose message may be shown to the caller and the model. */
  run(tool: ToolRow, args: Record<string, unknown>, context: ExecutorRunContext): Promise<unknown>;
}

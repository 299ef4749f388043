import type { JsonSchemaDocument, ToolImplementation } from '../../../db/schema/tools.js';
import type { FieldError } from '../../../lib/errors.js';
import type { Allowlist } from '../egress.js';

/** Why a run failed, in words safe to show the caller and the model (no secrets, no internal addresses). */
export class ToolRunError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ToolRunError';
  }
}

export interface BuiltinRunContext {
  executionId: string;
  /** The user the call runs for (the requester). */
  userId: string;
  /** The approval this run was claimed under; null for a call that ran without one. */
  approvalId: string | null;
  toolName: string;
  implementation: ToolImplementation;
  /** Aborted when the execution's deadline passes. */
  signal: AbortSignal;
  allowlist: Allowlist;
  /** Resolves a vault secret server-side; the value must never be returned, logged or audited. */
  useSecret(name: string): Promise<string>;
  /** The tool's own output schema (an administrator may narrow the built-in's): what the caller asked to get back. */
  outputSchema: JsonSchemaDocument | null;
}

export type ImplementationOption = Exclude<keyof ToolImplementation, 'type' | 'builtin'>;

/** A tool implemented in this codebase. Registered once per process; the `tools` row says who may use it and how. */
export interface BuiltinTool {
  name: string;
  description: string;
  inputSchema: JsonSchemaDocument;
  outputSchema: JsonSchemaDocument | null;
  /** The default of `requires_approval` when the tool is seeded. */
  requiresApproval: boolean;
  /** Options of `implementation` this built-in understands; others are refused at registration. */
  options: readonly ImplementationOption[];
  /** Registered as a tool row at start-up (idempotently) when true. */
  seed: boolean;
  /**
   * True when a call changes nothing outside this process (a pure function such as redact_text): it is then recorded
   * once, after it ran. Otherwise (the default) the call is on record as initiated before it runs.
   */
  pure?: boolean;
  /**
   * True when a result must never be served from the tool cache (`cache_ttl_seconds` is refused): it depends on the
   * caller's rights at the time of the call, which a cached copy could outlive.
   */
  uncacheable?: boolean;
  /**
   * Checks beyond the schema, made before the approval gate (pointers relative to the arguments), so nobody is
   * asked to approve a call that could never run.
   */
  checkArgs?(args: Record<string, unknown>, context: { allowlist: Allowlist }): FieldError[];
  run(args: Record<string, unknown>, context: BuiltinRunContext): Promise<unknown>;
}

import type { Actor, RequestContext } from '../auth/permissions.js';
import type { ChatToolDefinition } from '../llm/providers/index.js';

/*
 * The seam between chat and the tool engine. The tools module implements it and decorates `app.chatTools`; chat
 * reaches it through `neighbour(app, 'chatTools')` (the tools module registers after chat).
 */

/** A tool as offered to the model: the provider layer's definition, one type for both sides. */
export type { ChatToolDefinition } from '../llm/providers/index.js';

export interface ChatToolCall {
  toolCallId: string;
  toolName: string;
  args: Record<string, unknown>;
}

export interface ChatToolContext {
  sessionId: string;
  requestContext: RequestContext;
}

export type ChatToolOutcome =
  | { status: 'completed'; execution_id: string; result: unknown; cached: boolean }
  /** Unknown tool, arguments that fail the schema, a role too low, or the tool itself failed: reported to the model. */
  | { status: 'failed'; execution_id: string | null; error: string }
  /** The call was cut off (shutdown, or its instance died) before its outcome was recorded: it may have taken effect. */
  | { status: 'interrupted'; execution_id: string; error: string }
  | { status: 'pending_approval'; execution_id: string; approval_id: string };

export type ResumedOutcome =
  | ChatToolOutcome
  | { status: 'rejected'; execution_id: string | null; reason: string | null }
  | { status: 'expired'; execution_id: string | null; reason: string | null };

export interface ResumedToolCall {
  toolCallId: string;
  toolName: string;
  args: Record<string, unknown>;
  outcome: ResumedOutcome;
}

export interface ChatToolRuntime {
  /** The tools this actor may use; the model is offered these only. */
  listForActor(actor: Actor): Promise<ChatToolDefinition[]>;
  /**
   * The full execution pipeline for a call the model proposed (exists/enabled → role → args → cache → approval gate →
   * run → output check → stored → audited). The same gated call proposed twice in a session returns the same pending
   * approval; it never creates a second execution.
   */
  executeFromChat(actor: Actor, call: ChatToolCall, context: ChatToolContext): Promise<ChatToolOutcome>;
  /**
   * After the decision: claims the approval for this session exactly once (safe across instances), runs the approved
   * call once, or reports the rejection/expiry. With `resultNotStored` (the chat holds no result for the call), an
   * approval already claimed by a continuation that never stored one (its instance died) is answered with the call's
   * recorded outcome, `interrupted` when none was recorded; it never runs again.
   * Throws ConflictError while still pending, while the claimed call is still running, or when already continued;
   * NotFoundError for another user's approval or another session.
   */
  resumeApproval(actor: Actor, approvalId: string, context: ChatToolContext, options?: { resultNotStored?: boolean }): Promise<ResumedToolCall>;
}

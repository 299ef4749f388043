import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Db } from '../../db/client.js';
import type { ChatMessageStatus, ChatRole, ChatUsage } from '../../db/schema/chat.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import type { LlmService, ResolvedModel } from '../llm/llm.service.js';
import type { ChatResponseFormat, ChatStreamEvent, ChatToolDefinition } from '../llm/providers/index.js';
import type { Label } from '../../lib/labels.js';
import { createStreamingRestorer, DEFAULT_REDACTION_POLICY, type PlaceholderVault } from '../redaction/index.js';
import type { DetectionOffload } from '../redaction/detection-offload.js';
import type { ChatToolOutcome, ChatToolRuntime, ResumedOutcome } from './chat-tools.js';
import {
  chooseContext,
  countsForAudit,
  createRedactor,
  restoreToolArgs,
  systemPrompt,
  toModelMessages,
  type HistoryMessage,
  type Redactor,
  type StoredToolCall,
  type ToolResultPayload,
} from './chat.context.js';
import { countTokens, MESSAGE_OVERHEAD_TOKENS } from './chat.tokens.js';
import type { TurnGrounding } from './grounded-turn.js';
import type { Citation } from './grounding.js';

export type TurnStatus = 'completed' | 'awaiting_approval' | 'error' | 'interrupted';

/** The stored (or, in a stateless turn, the final) assistant message as the turn reports it. */
export interface AssistantMessageEvent {
  id: string;
  role: 'assistant';
  content: string;
  model: string;
  usage?: ChatUsage;
  created_at: string;
  status: ChatMessageStatus;
  tool_calls?: StoredToolCall[];
  citations?: Citation[];
  label?: Label;
  routed_to?: string | null;
  context_truncated?: true;
}

/**
 * What a turn produces, in order. Payload fields are named as on the SSE contract, so the SSE adapter writes them as
 * they are; other adapters (OpenAI chunks, MCP results) translate them.
 */
export type TurnEvent =
  | { type: 'session'; session_id: string; message_id: string }
  | { type: 'token'; delta: string }
  | { type: 'tool_call'; tool_call_id: string; tool: string; args: Record<string, unknown> }
  | ({ type: 'tool_result'; tool_call_id: string; tool: string } & ToolResultPayload)
  | { type: 'approval_required'; approval_id: string; tool_call_id: string; tool: string; args: Record<string, unknown> }
  | { type: 'citation'; n: number; document_id: string; chunk_id: string; title: string; page: number | null; label: Label }
  | { type: 'routed'; from: string; to: string; label: Label; reason: string }
  | ({ type: 'message' } & AssistantMessageEvent)
  /** The cause as thrown; each adapter turns it into its own error shape (a problem object on SSE). */
  | { type: 'error'; error: unknown }
  | { type: 'done'; status: TurnStatus };

export type TurnEventType = TurnEvent['type'];

/** Where a turn's events go; `signal` aborts when the client has gone or the server shuts down. */
export interface TurnEventSink {
  readonly signal: AbortSignal;
  emit(event: TurnEvent): void;
}

/** A message as a context candidate: decrypted only if it is chosen. */
export interface ContextEntry {
  role: ChatRole;
  tokenCount: number;
  open(): HistoryMessage;
}

export const freshEntry = (message: HistoryMessage): ContextEntry => ({ role: message.role, tokenCount: message.tokenCount, open: () => message });

/** One model answer as the turn hands it to its store. */
export interface AssistantRecord {
  id: string;
  content: string;
  toolCalls: StoredToolCall[];
  status: ChatMessageStatus;
  model: string;
  usage: ChatUsage | null;
  tokenCount: number;
  createdAt: Date;
  /** The passages given to the model in this turn so far; empty without grounding. */
  citations: Citation[];
  /** The session's label when the model was called; undefined without grounding. */
  label: Label | undefined;
  routedTo: string | null;
}

/**
 * Where a turn keeps its conversation: a stored chat session (encrypted rows) or, for a stateless request, memory
 * only. Audit, budgets and redaction are the turn's, whatever the store.
 */
export interface TurnStore {
  /** What the turn's audit events point at. */
  readonly resourceType: string;
  readonly resourceId: string;
  /** The placeholder vault redaction continues with (a session's, so placeholders stay stable across turns). */
  vault(): PlaceholderVault;
  /** The messages the model call of this step may see, oldest first. */
  context(step: number): Promise<ContextEntry[]>;
  /** Stores an answer; `grownVault` when redaction added placeholders since the last save. */
  saveAssistant(message: AssistantRecord, grownVault: PlaceholderVault | null): Promise<void>;
  /** `label`: the highest label of the passages the result brings, which the session's label rises to. */
  saveToolResult(call: { tool_call_id: string; tool: string }, payload: ToolResultPayload, label?: Label | null): Promise<void>;
  markAssistant(id: string, update: { status: ChatMessageStatus; toolCalls?: StoredToolCall[] }): Promise<void>;
}

/** Everything a turn needs once its checks passed. */
export interface TurnPlan {
  actor: Actor;
  context: RequestContext;
  model: ResolvedModel;
  temperature: number | undefined;
  /** The caller's limit on the answer (else the model's own). */
  maxOutputTokens?: number;
  /** Server-side tools the turn runs itself (through the tool engine); undefined: none. */
  runtime: ChatToolRuntime | undefined;
  /** The tools offered to the model. */
  tools: ChatToolDefinition[];
  /**
   * The tools are the client's own (OpenAI function calling): a proposed call ends the turn and is handed back in the
   * final message instead of being run.
   */
  clientTools?: boolean;
  /**
   * With client tools: the names among `tools` that the runtime runs here (the ungated `search_documents` of
   * `knowledge: "auto"`). A step whose calls are all of these goes on like a stored turn; any other call ends the turn.
   */
  serverTools?: ReadonlySet<string>;
  /** JSON output (OpenAI's `response_format`), where the provider has it. */
  responseFormat?: ChatResponseFormat;
  /** Text the client wrote for the system role, sent after CDSA's own system prompt. */
  clientSystem?: string;
  store: TurnStore;
  /** Events sent before the first model call (the stored message, a continuation's tool result). */
  opening: TurnEvent[];
  /** A continuation that still waits for other approvals does not call the model. */
  stillWaiting: boolean;
  /** Added to the details of every audit event of this turn (e.g. the API key it was made with). */
  auditDetails?: Record<string, unknown>;
  /**
   * Document context and sensitivity routing (grounded-turn.ts): extra system text, citations, search results as
   * numbered passages, and a refusal that stops the turn before any model call.
   */
  grounding?: TurnGrounding;
}

export interface TurnLogger {
  error(obj: object, msg: string): void;
}

export interface TurnDeps {
  db: Db;
  audit: Pick<AuditRecorder, 'recordStandalone' | 'promptDigest'>;
  llm: Pick<LlmService, 'streamChat' | 'recordUsage' | 'redactionPolicy'>;
  redactCloudPrompts: boolean;
  logger: TurnLogger;
  now?: () => Date;
  /** Model calls in one turn (tool round trips included); the last one is offered no tools. */
  maxSteps?: number;
  /** Detection of long texts on worker threads ahead of the (synchronous) redaction; absent: all in place. */
  detection?: Pick<DetectionOffload, 'prefetch'>;
}

export const DEFAULT_MAX_STEPS = 5;
/** What the model is told when the tool runtime itself threw (the details go to the log only). */
const TOOL_RUNTIME_FAILURE = 'The tool could not be run because of an internal error';

/** Room kept for the answer: the model's own limit, else a quarter of the window up to 1024 tokens. */
export function promptBudget(model: ResolvedModel): number {
  const reserve = model.maxOutputTokens ?? Math.min(1024, Math.floor(model.contextTokens / 4));
  return Math.max(1, model.contextTokens - reserve);
}

const systemTokenCache = new Map<string, number>();
/** Tokens of a system prompt (with the per-message overhead); the few distinct prompts are counted once. */
export function systemTokens(system: string): number {
  let tokens = systemTokenCache.get(system);
  if (tokens === undefined) {
    tokens = countTokens(system) + MESSAGE_OVERHEAD_TOKENS;
    if (systemTokenCache.size < 64) systemTokenCache.set(system, tokens);
  }
  return tokens;
}

export function tokensOf(content: string, toolCalls: StoredToolCall[]): number {
  return countTokens(content) + (toolCalls.length === 0 ? 0 : countTokens(JSON.stringify(toolCalls)));
}

export function toolResultPayload(outcome: Exclude<ResumedOutcome, { status: 'pending_approval' }>): ToolResultPayload {
  switch (outcome.status) {
    case 'completed':
      return { status: 'completed', result: outcome.result };
    case 'failed':
      return { status: 'failed', error: outcome.error };
    case 'rejected':
      return { status: 'rejected', error: `An approver rejected this call${outcome.reason ? `: ${outcome.reason}` : ''}` };
    case 'expired':
      return { status: 'expired', error: 'The approval expired before anyone decided' };
    case 'interrupted':
      return { status: 'interrupted', error: `The call was interrupted: ${outcome.error}` };
  }
}

interface StepResult {
  text: string;
  calls: StoredToolCall[];
  usage: { input_tokens: number | null; output_tokens: number | null } | null;
  error: unknown;
  firstTokenMs: number | null;
  latencyMs: number;
}

function messageEvent(record: AssistantRecord, calls: StoredToolCall[], truncated: boolean, status = record.status): TurnEvent {
  const grounded = record.label !== undefined;
  return {
    type: 'message',
    id: record.id,
    role: 'assistant',
    content: record.content,
    model: record.model,
    ...(record.usage ? { usage: record.usage } : {}),
    created_at: record.createdAt.toISOString(),
    status,
    ...(calls.length > 0 ? { tool_calls: calls.map((call) => ({ ...call })) } : {}),
    ...(record.citations.length > 0 ? { citations: record.citations.map((c) => ({ ...c })) } : {}),
    ...(grounded ? { label: record.label, routed_to: record.routedTo } : {}),
    ...(truncated ? { context_truncated: true as const } : {}),
  };
}

/**
 * The turn state machine: model step → (tools → model step)* → final message, with redaction towards cloud models,
 * placeholder restoration in what the user sees (streamed text and tool-call arguments), token accounting and the
 * `LLM_REQUEST`/`PII_REDACTED` audit events of every model call. It knows nothing of HTTP or of how messages are
 * stored: the plan's store keeps them, the sink's adapter writes the events in its wire format.
 */
export function createTurnRunner(deps: TurnDeps) {
  const { db, audit, llm, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const maxSteps = deps.maxSteps ?? DEFAULT_MAX_STEPS;

  async function run(plan: TurnPlan, sink: TurnEventSink): Promise<TurnStatus> {
    const { model, store } = plan;
    for (const opening of plan.opening) sink.emit(opening);
    const grounding = plan.grounding;
    if (grounding?.refusal) {
      // Refused by the sensitivity policy: nothing has been sent, and nothing will be.
      sink.emit({ type: 'error', error: grounding.refusal });
      sink.emit({ type: 'done', status: 'error' });
      return 'error';
    }
    for (const opening of grounding?.opening ?? []) sink.emit(opening);
    if (plan.stillWaiting) {
      sink.emit({ type: 'done', status: 'awaiting_approval' });
      return 'awaiting_approval';
    }
    const redacting = deps.redactCloudPrompts && !model.isLocal;
    const vault = redacting ? store.vault() : null;
    const policy = redacting ? await llm.redactionPolicy() : undefined;
    let savedVaultSize = vault?.size ?? 0;
    // The grounding text (the rule about untrusted passages, and the pinned ones) is part of the system prompt, so it
    // goes through the redactor like the rest of it.
    const base = systemPrompt(redacting) + (grounding?.systemText ?? '');
    const system = plan.clientSystem ? `${base}\n\n${plan.clientSystem}` : base;
    const systemCost = systemTokens(system);
    let truncated = false;
    let outgoing: { system: string; tools: ChatToolDefinition[] } | undefined;

    for (let step = 1; step <= maxSteps; step += 1) {
      // Stopped before this model call (the client left, or the server is shutting down): nothing to call or store.
      if (sink.signal.aborted) return 'interrupted';
      // The window of messages that fits, decrypted only once chosen.
      const entries = await store.context(step);
      const chosen = chooseContext(entries, promptBudget(model) - systemCost);
      truncated ||= chosen.truncated;
      const history = chosen.kept.map((entry) => entry.open());
      // Long texts (a pasted contract, a long tool result) are detected off the event loop first; the redactor below
      // then finds them ready. The prompt's fixed parts are detected once per turn, with the first step.
      if (vault && deps.detection) await deps.detection.prefetch(outgoing ? history : [history, system, plan.tools], policy?.timeBudgetMs ?? DEFAULT_REDACTION_POLICY.timeBudgetMs);
      // Throws RedactionFailedError (the turn ends with that problem, before any model call) if detection fails.
      const redactor: Redactor | undefined = vault ? createRedactor(vault, policy) : undefined;
      const messages = toModelMessages(history, redactor);
      // Client tools stay on at every step: the turn never loops on them (a call ends it). Server-side tools are
      // offered except at the last step, so the turn always ends with an answer.
      const serverTools = plan.serverTools;
      const stepTools =
        plan.clientTools === true ? (step < maxSteps || !serverTools ? plan.tools : plan.tools.filter((tool) => !serverTools.has(tool.name))) : step < maxSteps ? plan.tools : [];
      const offerTools = stepTools.length > 0;
      // Everything in the prompt goes through the redactor: the system text and the tool definitions too
      // (once per turn: the vault gives them the same placeholders at every step).
      outgoing ??= { system: redactor ? redactor.text(system) : system, tools: redactor ? redactor.tools(plan.tools) : plan.tools };
      const offered = stepTools.length === plan.tools.length ? outgoing.tools : outgoing.tools.filter((_, i) => stepTools.includes(plan.tools[i]!));
      const prompt = { system: outgoing.system, tools: offerTools ? offered : undefined };
      const result = await streamStep(plan, { ...prompt, messages, vault, sink });
      const interrupted = sink.signal.aborted;
      const status: ChatMessageStatus = interrupted ? 'interrupted' : result.error !== undefined ? 'error' : 'completed';
      const contextTokens = systemCost + history.reduce((sum, m) => sum + m.tokenCount + MESSAGE_OVERHEAD_TOKENS, 0);
      const stored = await storeAssistant(plan, {
        step,
        result,
        status,
        redactor,
        vault: vault && vault.size > savedVaultSize ? vault : null,
        contextTokens,
        truncated,
        promptText: `${prompt.system}\n${JSON.stringify(messages)}`,
      });
      savedVaultSize = vault?.size ?? 0;
      if (interrupted) return 'interrupted';
      if (result.error !== undefined) {
        sink.emit({ type: 'error', error: result.error });
        sink.emit({ type: 'done', status: 'error' });
        return 'error';
      }
      // Calls the client runs itself end the turn: they are handed back (any server-side call of the step is dropped).
      const clientCalls = plan.clientTools ? result.calls.filter((call) => !plan.serverTools?.has(call.tool)) : [];
      if (result.calls.length === 0 || !plan.runtime || clientCalls.length > 0) {
        sink.emit(messageEvent(stored, clientCalls, truncated));
        sink.emit({ type: 'done', status: 'completed' });
        return 'completed';
      }

      const pending = await runTools(plan, stored.id, result.calls, sink);
      if (sink.signal.aborted) {
        await store.markAssistant(stored.id, { status: 'interrupted' });
        return 'interrupted';
      }
      if (pending) {
        await store.markAssistant(stored.id, { status: 'awaiting_approval', toolCalls: result.calls });
        sink.emit(messageEvent(stored, result.calls, truncated, 'awaiting_approval'));
        sink.emit({ type: 'done', status: 'awaiting_approval' });
        return 'awaiting_approval';
      }
    }
    // Unreachable in practice: the last step offers no tools, so it ends with text or an error above.
    sink.emit({ type: 'done', status: 'completed' });
    return 'completed';
  }

  async function streamStep(
    plan: TurnPlan,
    input: {
      system: string;
      messages: ReturnType<typeof toModelMessages>;
      tools: ChatToolDefinition[] | undefined;
      vault: PlaceholderVault | null;
      sink: TurnEventSink;
    },
  ): Promise<StepResult> {
    const { sink, vault } = input;
    const restorer = vault ? createStreamingRestorer(vault) : null;
    const started = performance.now();
    const result: StepResult = { text: '', calls: [], usage: null, error: undefined, firstTokenMs: null, latencyMs: 0 };
    const emit = (delta: string): void => {
      if (delta === '') return;
      result.text += delta;
      sink.emit({ type: 'token', delta });
    };
    let events: AsyncIterable<ChatStreamEvent>;
    try {
      events = llm.streamChat({
        modelId: plan.model.id,
        system: input.system,
        messages: input.messages,
        tools: input.tools,
        temperature: plan.temperature,
        maxOutputTokens: plan.maxOutputTokens ?? plan.model.maxOutputTokens,
        ...(plan.responseFormat ? { responseFormat: plan.responseFormat } : {}),
        abortSignal: sink.signal,
      });
      for await (const event of events) {
        switch (event.type) {
          case 'text':
            result.firstTokenMs ??= performance.now() - started;
            emit(restorer ? restorer.push(event.delta) : event.delta);
            break;
          case 'tool_call': {
            result.firstTokenMs ??= performance.now() - started;
            const args = vault ? restoreToolArgs(vault, event.args) : event.args;
            const call: StoredToolCall = { tool_call_id: event.toolCallId, tool: event.toolName, args };
            result.calls.push(call);
            sink.emit({ type: 'tool_call', tool_call_id: call.tool_call_id, tool: call.tool, args: call.args });
            break;
          }
          case 'finish':
            result.usage = event.usage;
            break;
          case 'error':
            result.error = event.error;
            break;
        }
      }
    } catch (error) {
      result.error = error;
    }
    if (restorer) emit(restorer.flush());
    result.latencyMs = performance.now() - started;
    return result;
  }

  async function storeAssistant(
    plan: TurnPlan,
    input: {
      step: number;
      result: StepResult;
      status: ChatMessageStatus;
      redactor: Redactor | undefined;
      vault: PlaceholderVault | null;
      contextTokens: number;
      truncated: boolean;
      promptText: string;
    },
  ): Promise<AssistantRecord> {
    const { actor, model, store, context } = plan;
    const { result, status } = input;
    const id = randomUUID();
    const tokenCount = tokensOf(result.text, result.calls);
    // Budget accounting needs a number even when the provider reported none (an interrupted or failed call).
    const spent = {
      input_tokens: result.usage?.input_tokens ?? input.contextTokens,
      output_tokens: result.usage?.output_tokens ?? tokenCount,
    };
    const digest = audit.promptDigest(input.promptText);
    const record: AssistantRecord = {
      id,
      content: result.text,
      toolCalls: result.calls,
      status,
      model: model.id,
      usage: result.usage,
      tokenCount,
      createdAt: now(),
      citations: plan.grounding?.citations() ?? [],
      label: plan.grounding?.label,
      routedTo: plan.grounding?.routedTo ?? null,
    };
    const write = store.saveAssistant(record, input.vault);
    const usage = llm.recordUsage(db, actor.userId, spent);
    const base = { userId: actor.userId, sessionId: actor.sessionId, context, resourceType: store.resourceType, resourceId: store.resourceId };
    const extra = plan.auditDetails ?? {};
    const events: AuditEventInput[] = [];
    const redacted = input.redactor ? countsForAudit(input.redactor.counts) : null;
    if (redacted && redacted.total > 0) {
      events.push({ ...base, eventType: 'PII_REDACTED', details: { message_id: id, model: model.id, provider: model.provider, ...redacted, ...extra } });
    }
    const error = result.error;
    events.push({
      ...base,
      eventType: 'LLM_REQUEST',
      details: {
        message_id: id,
        model: model.id,
        provider: model.provider,
        is_local: model.isLocal,
        ...(plan.grounding ? { label: plan.grounding.label, routed_to: plan.grounding.routedTo, citations: record.citations.length } : {}),
        step: input.step,
        status,
        input_tokens: result.usage?.input_tokens ?? null,
        output_tokens: result.usage?.output_tokens ?? null,
        latency_ms: Math.round(result.latencyMs),
        // Not `first_token_ms`: the audit sanitizer masks keys that mention tokens.
        ttft_ms: result.firstTokenMs === null ? null : Math.round(result.firstTokenMs),
        tool_calls: result.calls.map((call) => call.tool),
        redacted: input.redactor !== undefined,
        context_truncated: input.truncated,
        ...(error !== undefined ? { error: error instanceof Error ? error.message : 'unexpected error' } : {}),
        ...digest,
        ...extra,
      },
    });
    // The call has happened whatever is written now; its events go through the recorder's batches (one chain-head
    // lock for many concurrent turns) while the answer is stored.
    // The passages the answer cites go into their documents' access log (DOCUMENT_ACCESSED `cited`).
    const cited = result.text ? plan.grounding?.recordCited?.(result.text) : undefined;
    const [stored, ...others] = await Promise.allSettled([write, usage, ...events.map((event) => audit.recordStandalone(event)), ...(cited ? [cited] : [])]);
    const failed = others.find((outcome) => outcome.status === 'rejected');
    if (stored.status === 'rejected') throw stored.reason;
    if (failed) throw failed.reason;
    return record;
  }

  /** Runs each proposed call; true when at least one waits for an approval (its id is then set on the call). */
  async function runTools(plan: TurnPlan, assistantId: string, calls: StoredToolCall[], sink: TurnEventSink): Promise<boolean> {
    const runtime = plan.runtime!;
    let pending = false;
    for (const call of calls) {
      if (sink.signal.aborted) break;
      let outcome: ChatToolOutcome;
      try {
        outcome = await runtime.executeFromChat(
          plan.actor,
          { toolCallId: call.tool_call_id, toolName: call.tool, args: call.args },
          { sessionId: plan.store.resourceId, requestContext: plan.context },
        );
      } catch (error) {
        logger.error({ err: error, tool: call.tool, message_id: assistantId }, 'tool runtime failed');
        outcome = { status: 'failed', execution_id: null, error: TOOL_RUNTIME_FAILURE };
      }
      if (outcome.status === 'pending_approval') {
        pending = true;
        call.approval_id = outcome.approval_id;
        sink.emit({ type: 'approval_required', approval_id: outcome.approval_id, tool_call_id: call.tool_call_id, tool: call.tool, args: call.args });
        continue;
      }
      // A search's hits become numbered, delimited passages (the model sees them so, the session's label rises).
      const grounded = plan.grounding?.toolResult(call.tool, toolResultPayload(outcome));
      const payload = grounded?.payload ?? toolResultPayload(outcome);
      await plan.store.saveToolResult(call, payload, grounded?.label ?? null);
      sink.emit({ type: 'tool_result', tool_call_id: call.tool_call_id, tool: call.tool, ...payload });
      for (const citation of grounded?.citations ?? []) sink.emit({ type: 'citation', ...citation });
    }
    return pending;
  }

  return { run };
}

export type TurnRunner = ReturnType<typeof createTurnRunner>;

/** A conversation the client holds (an OpenAI-style `messages[]`): kept in memory for the turn, never stored. */
export function statelessStore(input: { resourceType: string; resourceId: string; messages: HistoryMessage[]; vault: PlaceholderVault }): TurnStore {
  const entries: ContextEntry[] = input.messages.map(freshEntry);
  const message = (id: string, content: string, toolCalls: StoredToolCall[], extra: Partial<HistoryMessage> = {}): HistoryMessage => ({
    id,
    role: 'assistant',
    content,
    toolCalls,
    toolCallId: null,
    toolName: null,
    tokenCount: tokensOf(content, toolCalls),
    ...extra,
  });
  return {
    resourceType: input.resourceType,
    resourceId: input.resourceId,
    vault: () => input.vault,
    context: async () => entries,
    async saveAssistant(record) {
      entries.push(freshEntry(message(record.id, record.content, record.toolCalls)));
    },
    async saveToolResult(call, payload) {
      const content = JSON.stringify(payload);
      entries.push(freshEntry({ ...message(randomUUID(), content, []), role: 'tool', toolCallId: call.tool_call_id, toolName: call.tool, tokenCount: countTokens(content) }));
    },
    async markAssistant() {},
  };
}

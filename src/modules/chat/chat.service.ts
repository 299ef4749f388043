import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Db, DbOrTx } from '../../db/client.js';
import type { ChatMessageStatus, ChatUsage } from '../../db/schema/chat.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, type Actor, type RequestContext } from '../auth/permissions.js';
import type { LlmService, ResolvedModel } from '../llm/llm.service.js';
import type { ChatStreamEvent, ChatToolDefinition } from '../llm/providers/index.js';
import { createStreamingRestorer, PlaceholderVault } from '../redaction/index.js';
import type { FieldEncryptionService } from '../vault/field-cipher.js';
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
import type { ChatMessageRow, ChatRepository, ChatSessionRow } from './chat.repository.js';
import { countTokens, loadTokenizer, MESSAGE_OVERHEAD_TOKENS } from './chat.tokens.js';

export type ChatEventName = 'session' | 'token' | 'tool_call' | 'tool_result' | 'approval_required' | 'message' | 'error' | 'done';
export type TurnStatus = 'completed' | 'awaiting_approval' | 'error' | 'interrupted';

/** Where a turn's events go (the SSE stream); `signal` aborts when the client has gone. */
export interface ChatEventSink {
  readonly signal: AbortSignal;
  send(event: ChatEventName, data: Record<string, unknown>): void;
  /** Sends the `error` event: a problem object for this error. */
  fail(error: unknown): void;
}

/** A request whose checks passed and whose input is stored: what is left runs while the stream is open. */
export interface PreparedTurn {
  sessionId: string;
  /** The stored user message (or, for a continuation, the stored tool result). */
  messageId: string;
  run(sink: ChatEventSink): Promise<TurnStatus>;
}

export interface StreamInput {
  message: string;
  session_id?: string;
  model?: string;
  temperature?: number;
  tools?: 'auto' | 'none';
}

export interface ContinueInput {
  session_id: string;
  approval_id: string;
}

export interface ToolCallView {
  tool_call_id: string;
  tool: string;
  args: Record<string, unknown>;
  approval_id?: string;
}

export interface MessageView {
  id: string;
  role: 'user' | 'assistant' | 'tool';
  content: string;
  status: ChatMessageStatus;
  model: string | null;
  usage: ChatUsage | null;
  tool_calls: ToolCallView[] | null;
  tool_call_id: string | null;
  tool_name: string | null;
  created_at: string;
}

export interface SessionView {
  id: string;
  title: string;
  model: string;
  created_at: string;
  updated_at: string;
}

export interface SessionDetail extends SessionView {
  messages: MessageView[];
}

export interface ChatLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ChatServiceDeps {
  db: Db;
  repository: ChatRepository;
  audit: Pick<AuditRecorder, 'record' | 'recordStandalone' | 'promptDigest'>;
  llm: Pick<LlmService, 'resolveModel' | 'streamChat' | 'checkBudget' | 'recordUsage' | 'redactionPolicy'>;
  cipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  /** Resolved per request: the tools module is optional. */
  tools: () => ChatToolRuntime | undefined;
  redactCloudPrompts: boolean;
  logger: ChatLogger;
  now?: () => Date;
  /** Model calls in one turn (tool round trips included); the last one is offered no tools. */
  maxSteps?: number;
}

export const DEFAULT_MAX_STEPS = 5;
const TITLE_LENGTH = 80;
/** Most assistant messages searched for an approval's tool call. */
const APPROVAL_LOOKUP_LIMIT = 50;
/** What the model is told when the tool runtime itself threw (the details go to the log only). */
const TOOL_RUNTIME_FAILURE = 'The tool could not be run because of an internal error';

export const messageContentAad = (id: string): string => `chat_messages:${id}:content`;
export const messageToolCallsAad = (id: string): string => `chat_messages:${id}:tool_calls`;
export const sessionTitleAad = (id: string): string => `chat_sessions:${id}:title`;
export const sessionVaultAad = (id: string): string => `chat_sessions:${id}:placeholder_vault`;

function titleFrom(message: string): string {
  const line = message.trim().split('\n')[0]!.trim();
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line || 'New chat';
}

/** Room kept for the answer: the model's own limit, else a quarter of the window up to 1024 tokens. */
function promptBudget(model: ResolvedModel): number {
  const reserve = model.maxOutputTokens ?? Math.min(1024, Math.floor(model.contextTokens / 4));
  return Math.max(1, model.contextTokens - reserve);
}

function toolResultPayload(outcome: Exclude<ResumedOutcome, { status: 'pending_approval' }>): ToolResultPayload {
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

/**
 * Chat sessions and turns. A turn stores the user's message before the model is called, streams the model's answer
 * (restoring placeholders for the user when the model is a cloud one), runs the tools the model asks for through the
 * tool runtime (stopping at an approval gate), and stores every message encrypted, each with its audit events.
 */
export function createChatService(deps: ChatServiceDeps) {
  const { db, repository, audit, llm, cipher, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const maxSteps = deps.maxSteps ?? DEFAULT_MAX_STEPS;

  function requireChat(actor: Actor): void {
    if (!hasPermission(actor.role, 'chat')) throw new ForbiddenError('This action needs the chat permission');
  }

  async function ownSession(actor: Actor, id: string): Promise<ChatSessionRow> {
    const session = await repository.findSession(db, id, actor.userId);
    if (!session) throw new NotFoundError('Chat session');
    return session;
  }

  function decryptMessage(row: ChatMessageRow): HistoryMessage {
    const toolCalls: StoredToolCall[] =
      row.toolCalls === null ? [] : (JSON.parse(cipher.decrypt(row.toolCalls, messageToolCallsAad(row.id))) as StoredToolCall[]);
    return {
      id: row.id,
      role: row.role,
      content: cipher.decrypt(row.content, messageContentAad(row.id)),
      toolCalls,
      toolCallId: row.toolCallId,
      toolName: row.toolName,
      tokenCount: row.tokenCount,
    };
  }

  function presentMessage(row: ChatMessageRow, decrypted: HistoryMessage = decryptMessage(row)): MessageView {
    return {
      id: row.id,
      role: row.role,
      content: decrypted.content,
      status: row.status,
      model: row.model,
      usage: row.usage,
      tool_calls: decrypted.toolCalls.length === 0 ? null : decrypted.toolCalls.map((call) => ({ ...call })),
      tool_call_id: row.toolCallId,
      tool_name: row.toolName,
      created_at: row.createdAt.toISOString(),
    };
  }

  function presentSession(row: ChatSessionRow): SessionView {
    return {
      id: row.id,
      title: cipher.decrypt(row.title, sessionTitleAad(row.id)),
      model: row.model,
      created_at: row.createdAt.toISOString(),
      updated_at: row.updatedAt.toISOString(),
    };
  }

  function loadVault(session: { id: string; placeholderVault: string | null }): PlaceholderVault {
    if (session.placeholderVault === null) return new PlaceholderVault();
    return PlaceholderVault.fromJSON(JSON.parse(cipher.decrypt(session.placeholderVault, sessionVaultAad(session.id))));
  }

  function tokensOf(content: string, toolCalls: StoredToolCall[]): number {
    return countTokens(content) + (toolCalls.length === 0 ? 0 : countTokens(JSON.stringify(toolCalls)));
  }

  function encryptToolCalls(id: string, calls: StoredToolCall[]): string | null {
    return calls.length === 0 ? null : cipher.encrypt(JSON.stringify(calls), messageToolCallsAad(id));
  }

  async function storeToolResult(
    sessionId: string,
    call: { tool_call_id: string; tool: string },
    payload: ToolResultPayload,
    executor: DbOrTx = db,
  ): Promise<ChatMessageRow> {
    const id = randomUUID();
    const content = JSON.stringify(payload);
    const at = now();
    return repository.insertMessage(executor, {
      id,
      sessionId,
      role: 'tool',
      content: cipher.encrypt(content, messageContentAad(id)),
      toolCalls: null,
      toolCallId: call.tool_call_id,
      toolName: call.tool,
      status: 'completed',
      model: null,
      usage: null,
      tokenCount: countTokens(content),
      createdAt: at,
      completedAt: at,
    });
  }

  interface TurnState {
    actor: Actor;
    context: RequestContext;
    session: { id: string; placeholderVault: string | null };
    /** What the first model call may see, read while the message was stored (null: read it then). */
    firstContext: ContextEntry[] | null;
    model: ResolvedModel;
    temperature: number | undefined;
    runtime: ChatToolRuntime | undefined;
    tools: ChatToolDefinition[];
    /** Events to send right after `session` (a continuation's tool result). */
    opening: Array<{ event: ChatEventName; data: Record<string, unknown> }>;
    /** A continuation that still waits for other approvals does not call the model. */
    stillWaiting: boolean;
  }

  /** A stored message as a context candidate: decrypted only if it is chosen. */
  interface ContextEntry {
    role: HistoryMessage['role'];
    tokenCount: number;
    open(): HistoryMessage;
  }

  const rowEntry = (row: ChatMessageRow): ContextEntry => ({ role: row.role, tokenCount: row.tokenCount, open: () => decryptMessage(row) });
  const freshEntry = (message: HistoryMessage): ContextEntry => ({ role: message.role, tokenCount: message.tokenCount, open: () => message });

  const systemTokenCache = new Map<string, number>();
  function systemTokens(system: string): number {
    let tokens = systemTokenCache.get(system);
    if (tokens === undefined) {
      tokens = countTokens(system) + MESSAGE_OVERHEAD_TOKENS;
      systemTokenCache.set(system, tokens);
    }
    return tokens;
  }

  interface StepResult {
    text: string;
    calls: StoredToolCall[];
    usage: { input_tokens: number | null; output_tokens: number | null } | null;
    error: unknown;
    firstTokenMs: number | null;
    latencyMs: number;
  }

  async function runTurn(state: TurnState, messageId: string, sink: ChatEventSink): Promise<TurnStatus> {
    const { model, session } = state;
    sink.send('session', { session_id: session.id, message_id: messageId });
    for (const opening of state.opening) sink.send(opening.event, opening.data);
    if (state.stillWaiting) {
      sink.send('done', { status: 'awaiting_approval' });
      return 'awaiting_approval';
    }
    const redacting = deps.redactCloudPrompts && !model.isLocal;
    const vault = redacting ? loadVault(session) : null;
    const policy = redacting ? await llm.redactionPolicy() : undefined;
    let savedVaultSize = vault?.size ?? 0;
    const system = systemPrompt(redacting);
    const systemCost = systemTokens(system);
    let truncated = false;
    let outgoing: { system: string; tools: ChatToolDefinition[] } | undefined;

    for (let step = 1; step <= maxSteps; step += 1) {
      // Stopped before this model call (the client left, or the server is shutting down): nothing to call or store.
      if (sink.signal.aborted) return 'interrupted';
      // The window of stored messages that fits, decrypted only once chosen.
      const entries =
        step === 1 && state.firstContext ? state.firstContext : (await repository.listMessages(db, session.id)).map(rowEntry);
      const chosen = chooseContext(entries, promptBudget(model) - systemCost);
      truncated ||= chosen.truncated;
      const history = chosen.kept.map((entry) => entry.open());
      // Throws RedactionFailedError (the turn ends with that problem, before any model call) if detection fails.
      const redactor: Redactor | undefined = vault ? createRedactor(vault, policy) : undefined;
      const messages = toModelMessages(history, redactor);
      const offerTools = state.tools.length > 0 && step < maxSteps;
      // Everything in the prompt goes through the redactor: the system text and the admin-written tool definitions too
      // (once per turn: the session's vault gives them the same placeholders at every step).
      outgoing ??= { system: redactor ? redactor.text(system) : system, tools: redactor ? redactor.tools(state.tools) : state.tools };
      const prompt = { system: outgoing.system, tools: offerTools ? outgoing.tools : undefined };
      const result = await streamStep(state, { ...prompt, messages, vault, sink });
      const interrupted = sink.signal.aborted;
      const status: ChatMessageStatus = interrupted ? 'interrupted' : result.error !== undefined ? 'error' : 'completed';
      const contextTokens = systemCost + history.reduce((sum, m) => sum + m.tokenCount + MESSAGE_OVERHEAD_TOKENS, 0);
      const stored = await storeAssistant(state, {
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
        sink.fail(result.error);
        sink.send('done', { status: 'error' });
        return 'error';
      }
      if (result.calls.length === 0 || !state.runtime) {
        sink.send('message', messageEvent(stored, result.text, [], truncated));
        sink.send('done', { status: 'completed' });
        return 'completed';
      }

      const pending = await runTools(state, stored.id, result.calls, sink);
      if (sink.signal.aborted) {
        await repository.updateMessage(db, stored.id, { status: 'interrupted' });
        return 'interrupted';
      }
      if (pending) {
        await repository.updateMessage(db, stored.id, {
          status: 'awaiting_approval',
          toolCalls: encryptToolCalls(stored.id, result.calls),
        });
        sink.send('message', { ...messageEvent(stored, result.text, result.calls, truncated), status: 'awaiting_approval' });
        sink.send('done', { status: 'awaiting_approval' });
        return 'awaiting_approval';
      }
    }
    // Unreachable in practice: the last step offers no tools, so it ends with text or an error above.
    sink.send('done', { status: 'completed' });
    return 'completed';
  }

  function messageEvent(row: ChatMessageRow, content: string, calls: StoredToolCall[], truncated: boolean): Record<string, unknown> {
    return {
      id: row.id,
      role: 'assistant',
      content,
      model: row.model,
      ...(row.usage ? { usage: row.usage } : {}),
      created_at: row.createdAt.toISOString(),
      status: row.status,
      ...(calls.length > 0 ? { tool_calls: calls.map((call) => ({ ...call })) } : {}),
      ...(truncated ? { context_truncated: true } : {}),
    };
  }

  async function streamStep(
    state: TurnState,
    input: {
      system: string;
      messages: ReturnType<typeof toModelMessages>;
      tools: ChatToolDefinition[] | undefined;
      vault: PlaceholderVault | null;
      sink: ChatEventSink;
    },
  ): Promise<StepResult> {
    const { sink, vault } = input;
    const restorer = vault ? createStreamingRestorer(vault) : null;
    const started = performance.now();
    const result: StepResult = { text: '', calls: [], usage: null, error: undefined, firstTokenMs: null, latencyMs: 0 };
    const emit = (delta: string): void => {
      if (delta === '') return;
      result.text += delta;
      sink.send('token', { delta });
    };
    let events: AsyncIterable<ChatStreamEvent>;
    try {
      events = llm.streamChat({
        modelId: state.model.id,
        system: input.system,
        messages: input.messages,
        tools: input.tools,
        temperature: state.temperature,
        maxOutputTokens: state.model.maxOutputTokens,
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
            sink.send('tool_call', { tool_call_id: call.tool_call_id, tool: call.tool, args: call.args });
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
    state: TurnState,
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
  ): Promise<ChatMessageRow> {
    const { actor, model, session, context } = state;
    const { result, status } = input;
    const id = randomUUID();
    const at = now();
    const tokenCount = tokensOf(result.text, result.calls);
    // Budget accounting needs a number even when the provider reported none (an interrupted or failed call).
    const spent = {
      input_tokens: result.usage?.input_tokens ?? input.contextTokens,
      output_tokens: result.usage?.output_tokens ?? tokenCount,
    };
    const digest = audit.promptDigest(input.promptText);
    const row: ChatMessageRow = {
      id,
      sessionId: session.id,
      seq: 0,
      role: 'assistant',
      content: cipher.encrypt(result.text, messageContentAad(id)),
      toolCalls: encryptToolCalls(id, result.calls),
      toolCallId: null,
      toolName: null,
      status,
      model: model.id,
      usage: result.usage,
      tokenCount,
      createdAt: at,
      completedAt: at,
    };
    const placeholderVault = input.vault ? cipher.encrypt(JSON.stringify(input.vault.toJSON()), sessionVaultAad(session.id)) : null;
    // One statement for the message and the session; the usage counter is its own atomic upsert.
    const write = repository.insertIntoSession(db, row, placeholderVault).then((stored) => {
      if (!stored) throw new NotFoundError('Chat session');
      if (placeholderVault !== null) session.placeholderVault = placeholderVault;
      return row;
    });
    const usage = llm.recordUsage(db, actor.userId, spent);
    const base = { userId: actor.userId, sessionId: actor.sessionId, context, resourceType: 'chat_session', resourceId: session.id };
    const events: AuditEventInput[] = [];
    const redacted = input.redactor ? countsForAudit(input.redactor.counts) : null;
    if (redacted && redacted.total > 0) {
      events.push({ ...base, eventType: 'PII_REDACTED', details: { message_id: id, model: model.id, provider: model.provider, ...redacted } });
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
      },
    });
    // The call has happened whatever is written now; its events go through the recorder's batches (one chain-head
    // lock for many concurrent turns) while the answer is stored.
    const [stored, ...others] = await Promise.allSettled([write, usage, ...events.map((event) => audit.recordStandalone(event))]);
    const failed = others.find((outcome) => outcome.status === 'rejected');
    if (stored.status === 'rejected') throw stored.reason;
    if (failed) throw failed.reason;
    return stored.value;
  }

  /** Runs each proposed call; true when at least one waits for an approval (its id is then set on the call). */
  async function runTools(state: TurnState, assistantId: string, calls: StoredToolCall[], sink: ChatEventSink): Promise<boolean> {
    const runtime = state.runtime!;
    let pending = false;
    for (const call of calls) {
      if (sink.signal.aborted) break;
      let outcome: ChatToolOutcome;
      try {
        outcome = await runtime.executeFromChat(
          state.actor,
          { toolCallId: call.tool_call_id, toolName: call.tool, args: call.args },
          { sessionId: state.session.id, requestContext: state.context },
        );
      } catch (error) {
        logger.error({ err: error, tool: call.tool, message_id: assistantId }, 'tool runtime failed');
        outcome = { status: 'failed', execution_id: null, error: TOOL_RUNTIME_FAILURE };
      }
      if (outcome.status === 'pending_approval') {
        pending = true;
        call.approval_id = outcome.approval_id;
        sink.send('approval_required', { approval_id: outcome.approval_id, tool_call_id: call.tool_call_id, tool: call.tool, args: call.args });
        continue;
      }
      const payload = toolResultPayload(outcome);
      await storeToolResult(state.session.id, call, payload);
      sink.send('tool_result', { tool_call_id: call.tool_call_id, tool: call.tool, ...payload });
    }
    return pending;
  }

  async function getSession(actor: Actor, id: string): Promise<SessionDetail> {
    requireChat(actor);
    const session = await ownSession(actor, id);
    const rows = await repository.listMessages(db, session.id);
    return { ...presentSession(session), messages: rows.map((row) => presentMessage(row)) };
  }

  async function toolsFor(actor: Actor, mode: 'auto' | 'none'): Promise<{ runtime: ChatToolRuntime | undefined; tools: ChatToolDefinition[] }> {
    const runtime = mode === 'none' ? undefined : deps.tools();
    if (!runtime) return { runtime: undefined, tools: [] };
    try {
      return { runtime, tools: await runtime.listForActor(actor) };
    } catch (error) {
      // Chat still works without tools; the failure is the tool module's to report.
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not list tools for chat');
      return { runtime, tools: [] };
    }
  }

  return {
    /**
     * Everything before the stream opens: permission, budget, session ownership, model, message size; then the user's
     * message is stored (with USER_QUERY). Throws AppErrors, which become ordinary problem responses.
     */
    async startTurn(actor: Actor, input: StreamInput, context: RequestContext): Promise<PreparedTurn> {
      requireChat(actor);
      const [found] = await Promise.all([
        input.session_id === undefined ? undefined : repository.findSessionForTurn(db, input.session_id, actor.userId),
        llm.checkBudget(actor.userId),
      ]);
      if (input.session_id !== undefined && !found) throw new NotFoundError('Chat session');
      if (found?.awaiting) {
        throw new ConflictError('This chat session waits for an approval decision: continue it with POST /chat/continue first');
      }
      const existing = found?.session;
      const model = await llm.resolveModel(input.model, existing?.model);
      await loadTokenizer();
      const tokenCount = countTokens(input.message);
      const redacting = deps.redactCloudPrompts && !model.isLocal;
      const room = promptBudget(model) - systemTokens(systemPrompt(redacting)) - MESSAGE_OVERHEAD_TOKENS;
      if (tokenCount > room) {
        throw new ValidationError('The message is too long for the model', [
          { pointer: '/message', detail: `is ${tokenCount} tokens; ${model.id} has room for ${Math.max(0, room)}` },
        ]);
      }

      const sessionId = existing?.id ?? randomUUID();
      const messageId = randomUUID();
      const turn = {
        userId: actor.userId,
        sessionId,
        newTitle: existing ? null : cipher.encrypt(titleFrom(input.message), sessionTitleAad(sessionId)),
        model: model.id,
        messageId,
        content: cipher.encrypt(input.message, messageContentAad(messageId)),
        tokenCount,
        at: now(),
      };
      // Everything the first model call needs is fetched at once: the message is stored (one statement) while its
      // USER_QUERY event is written, the history read and the tools listed. The model is called only after all of it.
      const tools = toolsFor(actor, input.tools ?? 'auto');
      const [stored, audited, history] = await Promise.allSettled([
        repository.startTurn(db, turn),
        audit.recordStandalone({
          eventType: 'USER_QUERY',
          userId: actor.userId,
          sessionId: actor.sessionId,
          resourceType: 'chat_session',
          resourceId: sessionId,
          details: { message_id: messageId, model: model.id, provider: model.provider, new_session: !existing, ...audit.promptDigest(input.message) },
          context,
        }),
        existing ? repository.listMessages(db, sessionId) : Promise.resolve([]),
      ]);
      if (stored.status === 'rejected') throw stored.reason;
      if (!stored.value) throw new NotFoundError('Chat session');
      if (audited.status === 'rejected' || history.status === 'rejected') {
        // Fail closed: a query that could not be audited is not kept, and never reaches a model.
        await repository.discardTurnStart(db, turn).catch((error: unknown) => {
          logger.error({ err: error, message_id: messageId }, 'could not discard an unaudited chat message');
        });
        throw audited.status === 'rejected' ? audited.reason : (history as PromiseRejectedResult).reason;
      }
      const fresh: HistoryMessage = { id: messageId, role: 'user', content: input.message, toolCalls: [], toolCallId: null, toolName: null, tokenCount };
      const { runtime, tools: offered } = await tools;
      const state: TurnState = {
        actor,
        context,
        session: { id: sessionId, placeholderVault: existing?.placeholderVault ?? null },
        // The read may or may not have seen the new message already: it is added once, last.
        firstContext: [...history.value.filter((row) => row.id !== messageId).map(rowEntry), freshEntry(fresh)],
        model,
        temperature: input.temperature ?? model.temperature,
        runtime,
        tools: offered,
        opening: [],
        stillWaiting: false,
      };
      return { sessionId, messageId, run: (sink) => runTurn(state, messageId, sink) };
    },

    /**
     * After an approval was decided: claims it (once) through the tool runtime, stores the tool's outcome, and lets
     * the model continue. 404 for another user's session or an approval not asked for in it; 409 while still pending
     * or when already continued.
     */
    async continueTurn(actor: Actor, input: ContinueInput, context: RequestContext): Promise<PreparedTurn> {
      requireChat(actor);
      const session = await ownSession(actor, input.session_id);
      const runtime = deps.tools();
      if (!runtime) throw new NotFoundError('Approval');
      await llm.checkBudget(actor.userId);
      let owner: ChatMessageRow | undefined;
      let calls: StoredToolCall[] = [];
      for (const row of await repository.listToolCallMessages(db, session.id, APPROVAL_LOOKUP_LIMIT)) {
        const decrypted = decryptMessage(row);
        if (decrypted.toolCalls.some((call) => call.approval_id === input.approval_id)) {
          owner = row;
          calls = decrypted.toolCalls;
          break;
        }
      }
      // The model may propose the same gated call more than once in one answer; the engine gives them one approval,
      // and every one of those calls gets its outcome, or the session would wait forever.
      const matching = calls.filter((c) => c.approval_id === input.approval_id);
      if (!owner || matching.length === 0) throw new NotFoundError('Approval');
      const answered = await repository.answeredToolCalls(db, session.id, calls.map((c) => c.tool_call_id));
      if (matching.every((c) => answered.has(c.tool_call_id))) throw new ConflictError('This approval has already been continued');
      const model = await llm.resolveModel(undefined, session.model);
      await loadTokenizer();

      // No result is stored for these calls (checked above): a continuation cut off by a crash is picked up here.
      const resumed = await runtime.resumeApproval(actor, input.approval_id, { sessionId: session.id, requestContext: context }, { resultNotStored: true });
      if (resumed.outcome.status === 'pending_approval') {
        throw new ConflictError('The approved call is waiting for another approval');
      }
      const payload = toolResultPayload(resumed.outcome);
      const unanswered = matching.filter((c) => !answered.has(c.tool_call_id));
      for (const c of unanswered) answered.add(c.tool_call_id);
      const stillWaiting = calls.some((c) => !answered.has(c.tool_call_id));
      const stored = await withTransaction(
        db,
        async (uow) => {
          // Two continuations may both have an outcome to store (one recovered after a crash): the first one stores it.
          await repository.lockMessage(uow.tx, owner.id);
          const storedMeanwhile = await repository.answeredToolCalls(uow.tx, session.id, unanswered.map((c) => c.tool_call_id));
          if (storedMeanwhile.size > 0) throw new ConflictError('This approval has already been continued');
          let last: ChatMessageRow | undefined;
          for (const c of unanswered) last = await storeToolResult(session.id, c, payload, uow.tx);
          if (!stillWaiting) await repository.updateMessage(uow.tx, owner.id, { status: 'completed' });
          await repository.touchSession(uow.tx, session.id, { now: now() });
          return last!;
        },
        logger,
      );
      const { tools } = await toolsFor(actor, 'auto');
      const state: TurnState = {
        actor,
        context,
        session: { id: session.id, placeholderVault: session.placeholderVault },
        firstContext: null,
        model,
        temperature: model.temperature,
        runtime,
        tools,
        opening: unanswered.map((c) => ({ event: 'tool_result', data: { tool_call_id: c.tool_call_id, tool: c.tool, ...payload } })),
        stillWaiting,
      };
      return { sessionId: session.id, messageId: stored.id, run: (sink) => runTurn(state, stored.id, sink) };
    },

    async listSessions(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<SessionView>> {
      requireChat(actor);
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { u: 'timestamp', id: 'uuid' });
      const rows = await repository.listSessions(db, actor.userId, limit + 1, after && { updatedAt: new Date(after.u), id: after.id });
      return toPage(rows, limit, (row) => ({ u: row.updatedAt.toISOString(), id: row.id }), presentSession);
    },

    getSession,

    /** Deletes the session and every message in it (not a soft delete); audited with the message count only. */
    async deleteSession(actor: Actor, id: string, context: RequestContext): Promise<void> {
      requireChat(actor);
      await withTransaction(
        db,
        async (uow) => {
          const deleted = await repository.deleteSession(uow.tx, id, actor.userId);
          if (deleted === undefined) throw new NotFoundError('Chat session');
          await audit.record(uow.tx, {
            eventType: 'CHAT_SESSION_DELETED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'chat_session',
            resourceId: id,
            details: { messages_deleted: deleted },
            context,
          });
        },
        logger,
      );
    },

    async exportSession(actor: Actor, id: string, format: 'json' | 'markdown'): Promise<{ body: string; contentType: string; filename: string }> {
      const detail = await getSession(actor, id);
      const exportedAt = now().toISOString();
      if (format === 'json') {
        return {
          body: JSON.stringify({ ...detail, exported_at: exportedAt }, null, 2),
          contentType: 'application/json; charset=utf-8',
          filename: `chat-${detail.id}.json`,
        };
      }
      return { body: toMarkdown(detail, exportedAt), contentType: 'text/markdown; charset=utf-8', filename: `chat-${detail.id}.md` };
    },
  };
}

function toMarkdown(detail: SessionDetail, exportedAt: string): string {
  const blocks: string[] = [
    `# ${detail.title.replace(/\s+/g, ' ')}`,
    [`- Session: ${detail.id}`, `- Model: ${detail.model}`, `- Created: ${detail.created_at}`, `- Exported: ${exportedAt}`].join('\n'),
  ];
  for (const message of detail.messages) {
    const who =
      message.role === 'user'
        ? 'User'
        : message.role === 'assistant'
          ? `Assistant (${message.model ?? 'unknown model'})`
          : `Tool result: ${message.tool_name ?? 'tool'}`;
    const status = message.status === 'completed' ? '' : ` (${message.status})`;
    blocks.push(`## ${who}${status}`, `_${message.created_at}_`);
    if (message.content !== '') blocks.push(message.role === 'tool' ? fenced(message.content) : message.content);
    for (const call of message.tool_calls ?? []) {
      blocks.push(`Tool call \`${call.tool}\` (${call.tool_call_id}):`, fenced(JSON.stringify(call.args, null, 2)));
    }
  }
  return `${blocks.join('\n\n')}\n`;
}

/** A JSON code block whose fence is longer than any backtick run inside it. */
function fenced(json: string): string {
  const longest = Math.max(2, ...[...json.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}json\n${json}\n${fence}`;
}

export type ChatService = ReturnType<typeof createChatService>;

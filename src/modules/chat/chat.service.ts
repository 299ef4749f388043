import { randomUUID } from 'node:crypto';
import type { Db, DbOrTx } from '../../db/client.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, type Actor, type RequestContext } from '../auth/permissions.js';
import type { LlmService, ResolvedModel } from '../llm/llm.service.js';
import type { ChatResponseFormat, ChatToolDefinition } from '../llm/providers/index.js';
import { PlaceholderVault } from '../redaction/index.js';
import type { FieldEncryptionService } from '../vault/field-cipher.js';
import type { ChatToolRuntime } from './chat-tools.js';
import { systemPrompt, type HistoryMessage, type StoredToolCall, type ToolResultPayload } from './chat.context.js';
import type { ChatMessageRow, ChatRepository, ChatSessionRow } from './chat.repository.js';
import type { ContinueBody, StreamBody } from './chat.schemas.js';
import { countTokens, loadTokenizer, MESSAGE_OVERHEAD_TOKENS } from './chat.tokens.js';
import type { Grounding, TurnGrounding } from './grounded-turn.js';
import type { Citation } from './grounding.js';
import { SEARCH_DOCUMENTS_TOOL } from './knowledge.js';
import { labelRank, type Label } from '../../lib/labels.js';
import { exportDocument, type ExportedSession, type ExportFormat } from './export.js';
import { presentMessage, presentSession, type SessionDetail, type SessionView } from './presenters.js';
import {
  createTurnRunner,
  DEFAULT_MAX_STEPS,
  freshEntry,
  promptBudget,
  statelessStore,
  systemTokens,
  tokensOf,
  toolResultPayload,
  type ContextEntry,
  type TurnEvent,
  type TurnEventSink,
  type TurnStatus,
  type TurnDeps,
  type TurnStore,
} from './turn.js';

export { DEFAULT_MAX_STEPS } from './turn.js';
export type { MessageView, SessionDetail, SessionView, ToolCallView } from './presenters.js';

/** A request whose checks passed and whose input is stored: what is left runs while the stream is open. */
export interface PreparedTurn {
  sessionId: string;
  /** The stored user message (or, for a continuation, the stored tool result). */
  messageId: string;
  run(sink: TurnEventSink): Promise<TurnStatus>;
}

/** The body of POST /chat/stream. */
export type StreamInput = StreamBody;

/** One message of a conversation the client holds (an OpenAI-style `messages[]` entry, already parsed). */
export interface StatelessMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** An assistant message's tool calls (arguments parsed). */
  tool_calls?: Array<{ tool_call_id: string; tool: string; args: Record<string, unknown> }>;
  /** A tool message: the call it answers. */
  tool_call_id?: string;
}

/** A turn over a conversation the client sends whole each time: nothing is stored as a session. */
export interface StatelessTurnInput {
  messages: StatelessMessage[];
  model?: string;
  temperature?: number;
  maxOutputTokens?: number;
  /** The client's own tools: offered to the model; a proposed call ends the turn and is returned, never run here. */
  tools?: ChatToolDefinition[];
  /** JSON output, where the provider has it. */
  responseFormat?: ChatResponseFormat;
  /** Documents to ground the turn in, read with the caller's own clearance (404 for one they may not read). */
  documentIds?: string[];
  /**
   * `auto`: offer the model whatever chat offers for knowledge (the ungated `search_documents`, when the tools module
   * has it), run here; `none` (default): nothing but the client's tools.
   */
  knowledge?: 'auto' | 'none';
  /** Added to every audit event of the turn (e.g. `api_key_id`). */
  auditDetails?: Record<string, unknown>;
}

export interface PreparedStatelessTurn {
  /** What the turn's audit events point at (`resource_type` `chat_completion`). */
  turnId: string;
  /** The model the turn runs on (the local fallback when sensitivity routing moved it). */
  model: ResolvedModel;
  /** The pinned documents' highest label (PUBLIC without grounding). */
  label: Label;
  run(sink: TurnEventSink): Promise<TurnStatus>;
}

/** The body of POST /chat/continue. */
export type ContinueInput = ContinueBody;

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
  /** Long-text PII detection on worker threads ahead of redaction (see redaction/detection-offload.ts). */
  detection?: TurnDeps['detection'];
  /** Document context and sensitivity routing of stored turns. */
  grounding: Grounding;
}

const TITLE_LENGTH = 80;
/** Most assistant messages searched for an approval's tool call. */
const APPROVAL_LOOKUP_LIMIT = 50;

export const messageContentAad = (id: string): string => `chat_messages:${id}:content`;
export const messageToolCallsAad = (id: string): string => `chat_messages:${id}:tool_calls`;
export const sessionTitleAad = (id: string): string => `chat_sessions:${id}:title`;
export const sessionVaultAad = (id: string): string => `chat_sessions:${id}:placeholder_vault`;
export const messageCitationsAad = (id: string): string => `chat_messages:${id}:citations`;

/** Pinned passages may take this share of the prompt budget; the conversation keeps the rest. */
const SOURCE_SHARE = 1 / 3;

/**
 * The tools a turn offers: `tools` decides CDSA's tools, `knowledge` decides search_documents. When only the search
 * is wanted, the runtime refuses any other call, so a model cannot run a tool it was not offered.
 */
function selectTools(
  listed: { runtime: ChatToolRuntime | undefined; tools: ChatToolDefinition[] },
  toolsMode: 'auto' | 'none',
  knowledge: 'auto' | 'none',
): { runtime: ChatToolRuntime | undefined; tools: ChatToolDefinition[] } {
  const tools = listed.tools.filter((tool) => (tool.name === SEARCH_DOCUMENTS_TOOL ? knowledge === 'auto' : toolsMode === 'auto'));
  const runtime = listed.runtime;
  if (!runtime || toolsMode === 'auto') return { runtime, tools };
  if (tools.length === 0) return { runtime: undefined, tools };
  const offered = new Set(tools.map((tool) => tool.name));
  return {
    tools,
    runtime: {
      ...runtime,
      listForActor: runtime.listForActor.bind(runtime),
      resumeApproval: runtime.resumeApproval.bind(runtime),
      async executeFromChat(actor, call, context) {
        if (!offered.has(call.toolName)) return { status: 'failed', execution_id: null, error: `The tool ${call.toolName} is not offered in this conversation` };
        return runtime.executeFromChat(actor, call, context);
      },
    },
  };
}

function titleFrom(message: string): string {
  const line = message.trim().split('\n')[0]!.trim();
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line || 'New chat';
}

/**
 * Chat sessions and turns. A turn stores the user's message before the model is called, streams the model's answer
 * (restoring placeholders for the user when the model is a cloud one), runs the tools the model asks for through the
 * tool runtime (stopping at an approval gate), and stores every message encrypted, each with its audit events.
 */
export function createChatService(deps: ChatServiceDeps) {
  const { db, repository, audit, llm, cipher, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const turns = createTurnRunner({
    db,
    audit,
    llm,
    redactCloudPrompts: deps.redactCloudPrompts,
    logger,
    now,
    maxSteps: deps.maxSteps ?? DEFAULT_MAX_STEPS,
    detection: deps.detection,
  });

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

  const sessionView = (row: ChatSessionRow): SessionView => presentSession(row, cipher.decrypt(row.title, sessionTitleAad(row.id)));

  function loadVault(session: { id: string; placeholderVault: string | null }): PlaceholderVault {
    if (session.placeholderVault === null) return new PlaceholderVault();
    return PlaceholderVault.fromJSON(JSON.parse(cipher.decrypt(session.placeholderVault, sessionVaultAad(session.id))));
  }

  function encryptCitations(id: string, citations: readonly Citation[]): string | null {
    return citations.length === 0 ? null : cipher.encrypt(JSON.stringify(citations), messageCitationsAad(id));
  }

  function decryptCitations(row: ChatMessageRow): Citation[] | null {
    return row.citations === null ? null : (JSON.parse(cipher.decrypt(row.citations, messageCitationsAad(row.id))) as Citation[]);
  }

  /** The citations of a session's earlier turns, so a passage keeps its number for the whole session. */
  async function earlierCitations(sessionId: string | undefined): Promise<Citation[]> {
    if (sessionId === undefined) return [];
    const rows = await repository.listCitations(db, sessionId);
    return rows.flatMap((row) => JSON.parse(cipher.decrypt(row.citations, messageCitationsAad(row.id))) as Citation[]);
  }

  /** The turn's grounding: pinned passages that fit a third of the prompt, and where the turn goes. */
  async function prepareGrounding(
    actor: Actor,
    input: { model: ResolvedModel; sessionId: string | undefined; sessionLabel: Label; sessionPinned: readonly string[]; requested: readonly string[]; tools: ChatToolDefinition[] },
    context: RequestContext,
  ): Promise<TurnGrounding> {
    return deps.grounding.prepare(
      actor,
      {
        model: input.model,
        sessionLabel: input.sessionLabel,
        sessionPinned: input.sessionPinned,
        requested: input.requested,
        canSearch: input.tools.some((tool) => tool.name === SEARCH_DOCUMENTS_TOOL),
        earlierCitations: await earlierCitations(input.sessionId),
        sourceBudget: (model) => Math.floor(promptBudget(model) * SOURCE_SHARE),
        countTokens,
      },
      context,
    );
  }

  function routingEvent(actor: Actor, grounding: TurnGrounding, sessionId: string, messageId: string, context: RequestContext) {
    if (!grounding.audit) return undefined;
    return audit.recordStandalone({
      ...grounding.audit,
      details: { ...grounding.audit.details, message_id: messageId },
      userId: actor.userId,
      sessionId: actor.sessionId,
      resourceType: 'chat_session',
      resourceId: sessionId,
      context,
    });
  }

  function encryptToolCalls(id: string, calls: StoredToolCall[]): string | null {
    return calls.length === 0 ? null : cipher.encrypt(JSON.stringify(calls), messageToolCallsAad(id));
  }

  async function storeToolResult(
    sessionId: string,
    call: { tool_call_id: string; tool: string },
    payload: ToolResultPayload,
    executor: DbOrTx = db,
    label: Label | null = null,
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
      label,
      createdAt: at,
      completedAt: at,
    });
  }

  const rowEntry = (row: ChatMessageRow): ContextEntry => ({ role: row.role, tokenCount: row.tokenCount, open: () => decryptMessage(row) });

  /**
   * A stored session as the turn's store: answers and tool results are stored encrypted, the placeholder vault with the
   * session. `firstContext` is what the first model call sees when it was read while the message was stored.
   */
  function sessionStore(session: { id: string; placeholderVault: string | null }, firstContext: ContextEntry[] | null): TurnStore {
    return {
      resourceType: 'chat_session',
      resourceId: session.id,
      vault: () => loadVault(session),
      context: async (step) => (step === 1 && firstContext ? firstContext : (await repository.listMessages(db, session.id)).map(rowEntry)),
      async saveAssistant(record, grownVault) {
        const row: ChatMessageRow = {
          id: record.id,
          sessionId: session.id,
          seq: 0,
          role: 'assistant',
          content: cipher.encrypt(record.content, messageContentAad(record.id)),
          toolCalls: encryptToolCalls(record.id, record.toolCalls),
          toolCallId: null,
          toolName: null,
          status: record.status,
          model: record.model,
          usage: record.usage,
          tokenCount: record.tokenCount,
          label: record.label ?? null,
          routedTo: record.routedTo,
          citations: encryptCitations(record.id, record.citations),
          createdAt: record.createdAt,
          completedAt: record.createdAt,
        };
        const placeholderVault = grownVault ? cipher.encrypt(JSON.stringify(grownVault.toJSON()), sessionVaultAad(session.id)) : null;
        // One statement for the message and the session.
        const stored = await repository.insertIntoSession(db, row, placeholderVault);
        if (!stored) throw new NotFoundError('Chat session');
        if (placeholderVault !== null) session.placeholderVault = placeholderVault;
      },
      async saveToolResult(call, payload, label) {
        // The label rises before the next model call sees the passages.
        if (label) await repository.raiseSessionLabel(db, session.id, label);
        await storeToolResult(session.id, call, payload, db, label ?? null);
      },
      async markAssistant(id, update) {
        await repository.updateMessage(db, id, {
          status: update.status,
          ...(update.toolCalls ? { toolCalls: encryptToolCalls(id, update.toolCalls) } : {}),
        });
      },
    };
  }

  async function getSession(actor: Actor, id: string): Promise<SessionDetail> {
    requireChat(actor);
    const session = await ownSession(actor, id);
    const rows = await repository.listMessages(db, session.id);
    return { ...sessionView(session), messages: rows.map((row) => presentMessage(row, decryptMessage(row), decryptCitations(row))) };
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
      const requested = await llm.resolveModel(input.model, existing?.model, { role: actor.role });
      await loadTokenizer();
      const toolsMode = input.tools ?? 'auto';
      const knowledge = input.knowledge ?? 'auto';
      const { runtime, tools: offered } = selectTools(
        await toolsFor(actor, toolsMode === 'none' && knowledge === 'none' ? 'none' : 'auto'),
        toolsMode,
        knowledge,
      );
      // Pinned documents are checked here (404 before anything is stored), and routing is decided.
      const grounding = await prepareGrounding(
        actor,
        {
          model: requested,
          sessionId: existing?.id,
          sessionLabel: existing?.label ?? 'PUBLIC',
          sessionPinned: existing?.pinnedDocumentIds ?? [],
          requested: input.document_ids ?? [],
          tools: offered,
        },
        context,
      );
      const model = grounding.model;
      const tokenCount = countTokens(input.message);
      const redacting = deps.redactCloudPrompts && !model.isLocal;
      const room = promptBudget(model) - systemTokens(systemPrompt(redacting) + grounding.systemText) - MESSAGE_OVERHEAD_TOKENS;
      if (tokenCount > room && !grounding.refusal) {
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
        // The session keeps the model asked for; a routed turn's messages name the model that answered.
        model: requested.id,
        messageId,
        content: cipher.encrypt(input.message, messageContentAad(messageId)),
        tokenCount,
        at: now(),
        label: grounding.label,
        pinnedDocumentIds: grounding.pinnedDocumentIds,
      };
      // Everything the first model call needs is fetched at once: the message is stored (one statement) while its
      // USER_QUERY event (and a routing decision's LLM_ROUTED) is written and the history read. The model is called
      // only after all of it.
      const [stored, audited, history, routedAudit] = await Promise.allSettled([
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
        routingEvent(actor, grounding, sessionId, messageId, context),
      ]);
      if (stored.status === 'rejected') throw stored.reason;
      if (!stored.value) throw new NotFoundError('Chat session');
      if (routedAudit.status === 'rejected') throw routedAudit.reason;
      if (audited.status === 'rejected' || history.status === 'rejected') {
        // Fail closed: a query that could not be audited is not kept, and never reaches a model.
        await repository.discardTurnStart(db, turn).catch((error: unknown) => {
          logger.error({ err: error, message_id: messageId }, 'could not discard an unaudited chat message');
        });
        throw audited.status === 'rejected' ? audited.reason : (history as PromiseRejectedResult).reason;
      }
      const fresh: HistoryMessage = { id: messageId, role: 'user', content: input.message, toolCalls: [], toolCallId: null, toolName: null, tokenCount };
      const plan = {
        actor,
        context,
        // The read may or may not have seen the new message already: it is added once, last.
        store: sessionStore(
          { id: sessionId, placeholderVault: existing?.placeholderVault ?? null },
          [...history.value.filter((row) => row.id !== messageId).map(rowEntry), freshEntry(fresh)],
        ),
        model,
        temperature: input.temperature ?? model.temperature,
        runtime,
        tools: offered,
        opening: [{ type: 'session', session_id: sessionId, message_id: messageId } satisfies TurnEvent],
        stillWaiting: false,
        grounding,
      };
      return { sessionId, messageId, run: (sink) => turns.run(plan, sink) };
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
      const requested = await llm.resolveModel(undefined, session.model, { role: actor.role });
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
      // The session's context is kept: its pinned documents (read again, access-checked) and its label.
      const grounding = await prepareGrounding(
        actor,
        { model: requested, sessionId: session.id, sessionLabel: session.label, sessionPinned: session.pinnedDocumentIds, requested: [], tools },
        context,
      );
      const model = grounding.model;
      if (labelRank(grounding.label) > labelRank(session.label)) await repository.raiseSessionLabel(db, session.id, grounding.label);
      await routingEvent(actor, grounding, session.id, stored.id, context);
      const opening: TurnEvent[] = [
        { type: 'session', session_id: session.id, message_id: stored.id },
        ...unanswered.map((c): TurnEvent => ({ type: 'tool_result', tool_call_id: c.tool_call_id, tool: c.tool, ...payload })),
      ];
      const plan = {
        actor,
        context,
        store: sessionStore({ id: session.id, placeholderVault: session.placeholderVault }, null),
        model,
        temperature: model.temperature,
        runtime,
        tools,
        opening,
        stillWaiting,
        grounding,
      };
      return { sessionId: session.id, messageId: stored.id, run: (sink) => turns.run(plan, sink) };
    },

    /**
     * A turn over a client-held conversation (the OpenAI-compatible API): the same checks, redaction, budgets and audit
     * as a stored turn, but the messages live only in memory. Client tools are passed to the model and their calls
     * handed back; CDSA's own tools are not offered (their approval flow needs a stored session).
     */
    async startStatelessTurn(actor: Actor, input: StatelessTurnInput, context: RequestContext): Promise<PreparedStatelessTurn> {
      requireChat(actor);
      await llm.checkBudget(actor.userId);
      const requested = await llm.resolveModel(input.model, undefined, { role: actor.role });
      await loadTokenizer();
      const system = input.messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n\n');
      const history = statelessHistory(input.messages);
      const last = history[history.length - 1];
      if (!last || last.role === 'assistant') {
        throw new ValidationError('The conversation must end with a user or tool message', [
          { pointer: '/messages', detail: 'needs a user or tool message after the last assistant message' },
        ]);
      }
      // Knowledge: only what chat offers for it (search_documents), never a gated tool, and never one whose name the
      // client's own tools already use.
      const clientTools = input.tools ?? [];
      const clientNames = new Set(clientTools.map((tool) => tool.name));
      const knowledge = input.knowledge ?? 'none';
      const server = knowledge === 'auto' ? selectTools(await toolsFor(actor, 'auto'), 'none', 'auto') : { runtime: undefined, tools: [] };
      const serverTools = server.tools.filter((tool) => !clientNames.has(tool.name));
      // Pinned documents are checked here (404 before anything is sent), and routing is decided.
      const grounding = await prepareGrounding(
        actor,
        { model: requested, sessionId: undefined, sessionLabel: 'PUBLIC', sessionPinned: [], requested: input.documentIds ?? [], tools: serverTools },
        context,
      );
      const model = grounding.model;
      const redacting = deps.redactCloudPrompts && !model.isLocal;
      const base = systemPrompt(redacting) + grounding.systemText;
      const room = promptBudget(model) - systemTokens(system ? `${base}\n\n${system}` : base) - MESSAGE_OVERHEAD_TOKENS;
      if (last.tokenCount > room && !grounding.refusal) {
        throw new ValidationError('The last message is too long for the model', [
          { pointer: `/messages/${input.messages.length - 1}/content`, detail: `is ${last.tokenCount} tokens; ${model.id} has room for ${Math.max(0, room)}` },
        ]);
      }
      const turnId = randomUUID();
      const extra = input.auditDetails ?? {};
      const lastUser = [...history].reverse().find((m) => m.role === 'user');
      // Fail closed: a query that could not be audited never reaches a model.
      const [audited, routed] = await Promise.allSettled([
        audit.recordStandalone({
          eventType: 'USER_QUERY',
          userId: actor.userId,
          sessionId: actor.sessionId,
          resourceType: 'chat_completion',
          resourceId: turnId,
          details: {
            model: model.id,
            provider: model.provider,
            stateless: true,
            message_count: input.messages.length,
            ...(grounding.pinnedDocumentIds.length > 0 ? { document_ids: grounding.pinnedDocumentIds, label: grounding.label } : {}),
            ...audit.promptDigest(lastUser?.content ?? ''),
            ...extra,
          },
          context,
        }),
        grounding.audit
          ? audit.recordStandalone({
              ...grounding.audit,
              details: { ...grounding.audit.details, ...extra },
              userId: actor.userId,
              sessionId: actor.sessionId,
              resourceType: 'chat_completion',
              resourceId: turnId,
              context,
            })
          : undefined,
      ]);
      if (audited.status === 'rejected') throw audited.reason;
      if (routed.status === 'rejected') throw routed.reason;
      // Refused by the sensitivity policy: an error response, before anything is sent anywhere.
      if (grounding.refusal) throw grounding.refusal;
      const withServerTools = serverTools.length > 0 && server.runtime !== undefined;
      const plan = {
        actor,
        context,
        store: statelessStore({ resourceType: 'chat_completion', resourceId: turnId, messages: history, vault: new PlaceholderVault() }),
        model,
        temperature: input.temperature ?? model.temperature,
        ...(input.maxOutputTokens === undefined ? {} : { maxOutputTokens: input.maxOutputTokens }),
        ...(input.responseFormat === undefined ? {} : { responseFormat: input.responseFormat }),
        runtime: withServerTools ? server.runtime : undefined,
        tools: withServerTools ? [...clientTools, ...serverTools] : clientTools,
        clientTools: true,
        ...(withServerTools ? { serverTools: new Set(serverTools.map((tool) => tool.name)) } : {}),
        ...(system ? { clientSystem: system } : {}),
        opening: [],
        stillWaiting: false,
        auditDetails: extra,
        grounding,
      };
      return { turnId, model, label: grounding.label, run: (sink) => turns.run(plan, sink) };
    },

    async listSessions(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<SessionView>> {
      requireChat(actor);
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { u: 'timestamp', id: 'uuid' });
      const rows = await repository.listSessions(db, actor.userId, limit + 1, after && { updatedAt: new Date(after.u), id: after.id });
      return toPage(rows, limit, (row) => ({ u: row.updatedAt.toISOString(), id: row.id }), sessionView);
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

    async exportSession(actor: Actor, id: string, format: ExportFormat): Promise<ExportedSession> {
      const detail = await getSession(actor, id);
      return exportDocument(detail, format, now().toISOString());
    },
  };
}

/** A client-held conversation as history: tool messages get their tool's name from the call they answer. */
function statelessHistory(messages: readonly StatelessMessage[]): HistoryMessage[] {
  const toolNames = new Map<string, string>();
  const out: HistoryMessage[] = [];
  for (const message of messages) {
    if (message.role === 'system') continue;
    const toolCalls: StoredToolCall[] = (message.role === 'assistant' ? (message.tool_calls ?? []) : []).map((c) => ({ ...c }));
    for (const call of toolCalls) toolNames.set(call.tool_call_id, call.tool);
    const toolCallId = message.role === 'tool' ? (message.tool_call_id ?? null) : null;
    out.push({
      id: randomUUID(),
      role: message.role,
      content: message.content,
      toolCalls,
      toolCallId,
      toolName: toolCallId === null ? null : (toolNames.get(toolCallId) ?? 'tool'),
      tokenCount: tokensOf(message.content, toolCalls),
    });
  }
  return out;
}

export type ChatService = ReturnType<typeof createChatService>;

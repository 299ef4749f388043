import { and, asc, count, desc, eq, inArray, isNotNull, lt, or, sql } from 'drizzle-orm';
import { queryRows, type DbOrTx } from '../../db/client.js';
import { chatMessages, chatSessions, type ChatMessageStatus, type ChatRole, type ChatUsage } from '../../db/schema/chat.js';
import type { Label } from '../../lib/labels.js';

export type ChatSessionRow = typeof chatSessions.$inferSelect;
export type ChatMessageRow = typeof chatMessages.$inferSelect;

export interface NewMessage {
  id: string;
  sessionId: string;
  role: ChatRole;
  /** Ciphertext. */
  content: string;
  /** Ciphertext of the JSON array, or null. */
  toolCalls: string | null;
  toolCallId: string | null;
  toolName: string | null;
  status: ChatMessageStatus;
  model: string | null;
  usage: ChatUsage | null;
  tokenCount: number;
  createdAt: Date;
  completedAt: Date | null;
  /** The session's label when the model was called (assistant), or of the passages a tool result brought. */
  label?: Label | null;
  routedTo?: string | null;
  /** Ciphertext of the JSON array of citations, or null. */
  citations?: string | null;
}

/** The first write of a turn: the user's message, in a new session or an existing one of the same user. */
export interface TurnStart {
  userId: string;
  sessionId: string;
  /** Set for a new session: its title ciphertext. */
  newTitle: string | null;
  model: string;
  messageId: string;
  /** Ciphertext. */
  content: string;
  tokenCount: number;
  at: Date;
  /** The session's label after this turn's pinned content (only ever raises the stored one). */
  label?: Label;
  /** Documents pinned to the session after this turn; undefined: unchanged. */
  pinnedDocumentIds?: string[];
}

export interface MessageUpdate {
  status?: ChatMessageStatus;
  toolCalls?: string | null;
}

const LABEL_ORDER = sql`ARRAY['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED']::text[]`;

/** `label = greatest(label, next)` in the labels' order: a session's label never goes down, whatever the writers race. */
function raisedLabel(next: Label) {
  return sql`CASE WHEN array_position(${LABEL_ORDER}, ${next}::text) > array_position(${LABEL_ORDER}, chat_sessions.label) THEN ${next}::text ELSE chat_sessions.label END`;
}

export function createChatRepository() {
  return {
    /**
     * Stores the user's message in one statement (so in one round trip, before the model is called): a new session
     * with it, or the existing session touched (still the user's, else nothing is written and false is returned).
     */
    async startTurn(db: DbOrTx, turn: TurnStart): Promise<boolean> {
      const at = turn.at.toISOString();
      const label = turn.label ?? 'PUBLIC';
      const pinned = turn.pinnedDocumentIds === undefined ? null : `{${turn.pinnedDocumentIds.join(',')}}`;
      const session =
        turn.newTitle === null
          ? sql`UPDATE chat_sessions SET updated_at = ${at}::timestamptz, model = ${turn.model}, label = ${raisedLabel(label)},
                pinned_document_ids = coalesce(${pinned}::uuid[], pinned_document_ids)
                WHERE id = ${turn.sessionId}::uuid AND user_id = ${turn.userId}::uuid RETURNING id`
          : sql`INSERT INTO chat_sessions (id, user_id, title, model, label, pinned_document_ids, created_at, updated_at)
                VALUES (${turn.sessionId}::uuid, ${turn.userId}::uuid, ${turn.newTitle}, ${turn.model}, ${label}::text,
                        coalesce(${pinned}::uuid[], '{}'::uuid[]), ${at}::timestamptz, ${at}::timestamptz)
                RETURNING id`;
      const rows = await queryRows<{ id: string }>(
        db,
        sql`WITH s AS (${session})
            INSERT INTO chat_messages (id, session_id, role, content, status, token_count, created_at, completed_at)
            SELECT ${turn.messageId}::uuid, s.id, 'user', ${turn.content}::text, 'completed', ${turn.tokenCount}::int, ${at}::timestamptz, ${at}::timestamptz
            FROM s RETURNING id`,
      );
      return rows.length === 1;
    },

    /**
     * `startTurn` for many turns in one statement (concurrent turns, see chat.grouped-writes.ts); per turn, whether its
     * message was stored. A turn in a session that is not its user's stores nothing, as alone; several turns in one
     * session touch it once (the latest time and model).
     */
    async startTurns(db: DbOrTx, turns: TurnStart[]): Promise<boolean[]> {
      const input = turns.map((turn, ord) => ({
        ord,
        user_id: turn.userId,
        session_id: turn.sessionId,
        new_title: turn.newTitle,
        model: turn.model,
        message_id: turn.messageId,
        content: turn.content,
        token_count: turn.tokenCount,
        at: turn.at.toISOString(),
        label: turn.label ?? 'PUBLIC',
        pinned: turn.pinnedDocumentIds === undefined ? null : `{${turn.pinnedDocumentIds.join(',')}}`,
      }));
      const rows = await queryRows<{ id: string }>(
        db,
        sql`WITH input AS (
              SELECT * FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb) AS r(
                ord int, user_id uuid, session_id uuid, new_title text, model text, message_id uuid, content text,
                token_count int, at timestamptz, label text, pinned text)
            ), created AS (
              INSERT INTO chat_sessions (id, user_id, title, model, label, pinned_document_ids, created_at, updated_at)
              SELECT session_id, user_id, new_title, model, label, coalesce(pinned::uuid[], '{}'::uuid[]), at, at FROM input WHERE new_title IS NOT NULL
              RETURNING id, user_id
            ), latest AS (
              SELECT session_id, user_id, max(at) AS at, (array_agg(model ORDER BY ord DESC))[1] AS model,
                     (array_agg(label ORDER BY array_position(${LABEL_ORDER}, label) DESC))[1] AS label,
                     (array_agg(pinned ORDER BY ord DESC) FILTER (WHERE pinned IS NOT NULL))[1] AS pinned
              FROM input WHERE new_title IS NULL GROUP BY session_id, user_id
            ), touched AS (
              -- The label only rises, as in startTurn.
              UPDATE chat_sessions s SET updated_at = l.at, model = l.model,
                label = CASE WHEN array_position(${LABEL_ORDER}, l.label) > array_position(${LABEL_ORDER}, s.label) THEN l.label ELSE s.label END,
                pinned_document_ids = coalesce(l.pinned::uuid[], s.pinned_document_ids)
              FROM latest l WHERE s.id = l.session_id AND s.user_id = l.user_id
              RETURNING s.id, s.user_id
            ), owned AS (
              SELECT id, user_id FROM created UNION ALL SELECT id, user_id FROM touched
            )
            INSERT INTO chat_messages (id, session_id, role, content, status, token_count, created_at, completed_at)
            SELECT i.message_id, i.session_id, 'user', i.content, 'completed', i.token_count, i.at, i.at
            FROM input i JOIN owned o ON o.id = i.session_id AND o.user_id = i.user_id
            ORDER BY i.ord
            RETURNING id`,
      );
      const stored = new Set(rows.map((row) => row.id));
      return turns.map((turn) => stored.has(turn.messageId));
    },

    /** Undoes `startTurn` when its audit event could not be written. */
    async discardTurnStart(db: DbOrTx, turn: Pick<TurnStart, 'sessionId' | 'messageId' | 'newTitle'>): Promise<void> {
      if (turn.newTitle !== null) {
        await db.delete(chatSessions).where(eq(chatSessions.id, turn.sessionId));
        return;
      }
      await db.delete(chatMessages).where(eq(chatMessages.id, turn.messageId));
    },

    /** The user's own session and whether it waits for an approval decision; another user's is treated as absent. */
    async findSessionForTurn(db: DbOrTx, id: string, userId: string): Promise<{ session: ChatSessionRow; awaiting: boolean } | undefined> {
      const [row] = await db
        .select({
          session: chatSessions,
          // Spelled out: inside a select list the builder would leave these column names unqualified.
          awaiting: sql<boolean>`exists (select 1 from chat_messages m where m.session_id = chat_sessions.id and m.status = 'awaiting_approval')`,
        })
        .from(chatSessions)
        .where(and(eq(chatSessions.id, id), eq(chatSessions.userId, userId)));
      return row;
    },

    /** The user's own session; another user's is treated as absent. */
    async findSession(db: DbOrTx, id: string, userId: string): Promise<ChatSessionRow | undefined> {
      const [row] = await db
        .select()
        .from(chatSessions)
        .where(and(eq(chatSessions.id, id), eq(chatSessions.userId, userId)));
      return row;
    },

    /** Newest activity first; `after` is the last row of the previous page. */
    async listSessions(
      db: DbOrTx,
      userId: string,
      limit: number,
      after?: { updatedAt: Date; id: string },
    ): Promise<ChatSessionRow[]> {
      const keyset = after
        ? or(
            lt(chatSessions.updatedAt, after.updatedAt),
            and(eq(chatSessions.updatedAt, after.updatedAt), lt(chatSessions.id, after.id)),
          )
        : undefined;
      return db
        .select()
        .from(chatSessions)
        .where(and(eq(chatSessions.userId, userId), keyset))
        .orderBy(desc(chatSessions.updatedAt), desc(chatSessions.id))
        .limit(limit);
    },

    /** Marks activity; a new placeholder mapping (ciphertext) is saved with it when given. */
    async touchSession(db: DbOrTx, id: string, fields: { now: Date; placeholderVault?: string }): Promise<void> {
      await db
        .update(chatSessions)
        .set({ updatedAt: fields.now, ...(fields.placeholderVault === undefined ? {} : { placeholderVault: fields.placeholderVault }) })
        .where(eq(chatSessions.id, id));
    },

    /** Raises the session's label to `label` when that is higher (content of that label entered it). */
    async raiseSessionLabel(db: DbOrTx, id: string, label: Label): Promise<void> {
      await queryRows(db, sql`UPDATE chat_sessions SET label = ${raisedLabel(label)} WHERE id = ${id}::uuid RETURNING id`);
    },

    /** Deletes the session and (by cascade) every one of its messages; returns how many messages went. */
    async deleteSession(db: DbOrTx, id: string, userId: string): Promise<number | undefined> {
      const [counted] = await db
        .select({ messages: count() })
        .from(chatMessages)
        .where(eq(chatMessages.sessionId, id));
      const deleted = await db
        .delete(chatSessions)
        .where(and(eq(chatSessions.id, id), eq(chatSessions.userId, userId)))
        .returning({ id: chatSessions.id });
      return deleted.length === 0 ? undefined : Number(counted?.messages ?? 0);
    },

    /**
     * Stores a message and marks the session's activity (saving a new placeholder mapping with it) in one statement.
     * False when the session no longer exists (deleted while the answer streamed).
     */
    async insertIntoSession(db: DbOrTx, message: NewMessage, placeholderVault: string | null): Promise<boolean> {
      const at = message.createdAt.toISOString();
      const completed = message.completedAt === null ? null : message.completedAt.toISOString();
      const vault = placeholderVault === null ? sql`` : sql`, placeholder_vault = ${placeholderVault}`;
      const rows = await queryRows<{ id: string }>(
        db,
        sql`WITH s AS (UPDATE chat_sessions SET updated_at = ${at}::timestamptz${vault} WHERE id = ${message.sessionId}::uuid RETURNING id)
            INSERT INTO chat_messages (id, session_id, role, content, tool_calls, tool_call_id, tool_name, status, model, usage, token_count,
                                       label, routed_to, citations, created_at, completed_at)
            SELECT ${message.id}::uuid, s.id, ${message.role}::text, ${message.content}::text, ${message.toolCalls}::text,
                   ${message.toolCallId}::text, ${message.toolName}::text, ${message.status}::text, ${message.model}::text,
                   ${message.usage === null ? null : JSON.stringify(message.usage)}::jsonb, ${message.tokenCount}::int,
                   ${message.label ?? null}::text, ${message.routedTo ?? null}::text, ${message.citations ?? null}::text,
                   ${at}::timestamptz, ${completed}::timestamptz
            FROM s RETURNING id`,
      );
      return rows.length === 1;
    },

    /**
     * `insertIntoSession` for many messages in one statement (concurrent turns' answers); per message, whether it was
     * stored. Several messages of one session touch it once: the latest time, and the newest placeholder mapping given.
     */
    async insertManyIntoSessions(db: DbOrTx, items: Array<{ message: NewMessage; placeholderVault: string | null }>): Promise<boolean[]> {
      const input = items.map(({ message, placeholderVault }, ord) => ({
        ord,
        id: message.id,
        session_id: message.sessionId,
        role: message.role,
        content: message.content,
        tool_calls: message.toolCalls,
        tool_call_id: message.toolCallId,
        tool_name: message.toolName,
        status: message.status,
        model: message.model,
        usage: message.usage,
        token_count: message.tokenCount,
        created_at: message.createdAt.toISOString(),
        completed_at: message.completedAt === null ? null : message.completedAt.toISOString(),
        placeholder_vault: placeholderVault,
        label: message.label ?? null,
        routed_to: message.routedTo ?? null,
        citations: message.citations ?? null,
      }));
      const rows = await queryRows<{ id: string }>(
        db,
        sql`WITH input AS (
              SELECT * FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb) AS r(
                ord int, id uuid, session_id uuid, role text, content text, tool_calls text, tool_call_id text,
                tool_name text, status text, model text, usage jsonb, token_count int, created_at timestamptz,
                completed_at timestamptz, placeholder_vault text, label text, routed_to text, citations text)
            ), latest AS (
              SELECT session_id, max(created_at) AS at,
                     (array_agg(placeholder_vault ORDER BY ord DESC) FILTER (WHERE placeholder_vault IS NOT NULL))[1] AS vault
              FROM input GROUP BY session_id
            ), s AS (
              UPDATE chat_sessions c SET updated_at = l.at, placeholder_vault = coalesce(l.vault, c.placeholder_vault)
              FROM latest l WHERE c.id = l.session_id
              RETURNING c.id
            )
            INSERT INTO chat_messages (id, session_id, role, content, tool_calls, tool_call_id, tool_name, status, model, usage, token_count,
                                       label, routed_to, citations, created_at, completed_at)
            SELECT i.id, i.session_id, i.role, i.content, i.tool_calls, i.tool_call_id, i.tool_name, i.status, i.model,
                   i.usage, i.token_count, i.label, i.routed_to, i.citations, i.created_at, i.completed_at
            FROM input i WHERE i.session_id IN (SELECT id FROM s)
            ORDER BY i.ord
            RETURNING id`,
      );
      const stored = new Set(rows.map((row) => row.id));
      return items.map(({ message }) => stored.has(message.id));
    },

    async insertMessage(db: DbOrTx, message: NewMessage): Promise<ChatMessageRow> {
      const [row] = await db.insert(chatMessages).values(message).returning();
      return row!;
    },

    /** Locks a message row until the transaction ends (continuations of one assistant message store results one at a time). */
    async lockMessage(db: DbOrTx, id: string): Promise<void> {
      await db.select({ id: chatMessages.id }).from(chatMessages).where(eq(chatMessages.id, id)).for('update');
    },

    async updateMessage(db: DbOrTx, id: string, update: MessageUpdate): Promise<void> {
      if (update.status === undefined && update.toolCalls === undefined) return;
      await db.update(chatMessages).set(update).where(eq(chatMessages.id, id));
    },

    /** Every message of a session, oldest first. */
    async listMessages(db: DbOrTx, sessionId: string): Promise<ChatMessageRow[]> {
      return db.select().from(chatMessages).where(eq(chatMessages.sessionId, sessionId)).orderBy(asc(chatMessages.seq));
    },

    /** The encrypted citations of a session's messages that have any, oldest first. */
    async listCitations(db: DbOrTx, sessionId: string): Promise<Array<{ id: string; citations: string }>> {
      const rows = await db
        .select({ id: chatMessages.id, citations: chatMessages.citations })
        .from(chatMessages)
        .where(and(eq(chatMessages.sessionId, sessionId), isNotNull(chatMessages.citations)))
        .orderBy(asc(chatMessages.seq));
      return rows.flatMap((row) => (row.citations === null ? [] : [{ id: row.id, citations: row.citations }]));
    },

    /** Assistant messages that proposed tool calls, newest first (where approvals are looked up). */
    async listToolCallMessages(db: DbOrTx, sessionId: string, limit: number): Promise<ChatMessageRow[]> {
      return db
        .select()
        .from(chatMessages)
        .where(and(eq(chatMessages.sessionId, sessionId), eq(chatMessages.role, 'assistant'), isNotNull(chatMessages.toolCalls)))
        .orderBy(desc(chatMessages.seq))
        .limit(limit);
    },

    /** Which of these tool calls already have a stored result. */
    async answeredToolCalls(db: DbOrTx, sessionId: string, toolCallIds: string[]): Promise<Set<string>> {
      if (toolCallIds.length === 0) return new Set();
      const rows = await db
        .select({ toolCallId: chatMessages.toolCallId })
        .from(chatMessages)
        .where(
          and(eq(chatMessages.sessionId, sessionId), eq(chatMessages.role, 'tool'), inArray(chatMessages.toolCallId, toolCallIds)),
        );
      return new Set(rows.map((row) => row.toolCallId).filter((id): id is string => id !== null));
    },

  };
}

export type ChatRepository = ReturnType<typeof createChatRepository>;

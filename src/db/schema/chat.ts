import { sql } from 'drizzle-orm';
import { bigint, check, index, integer, jsonb, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import type { Label } from '../../lib/labels.js';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

export const CHAT_ROLES = ['user', 'assistant', 'tool'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export const CHAT_MESSAGE_STATUSES = ['completed', 'interrupted', 'error', 'awaiting_approval'] as const;
export type ChatMessageStatus = (typeof CHAT_MESSAGE_STATUSES)[number];

/**
 * A conversation. The title and the placeholder mapping (which holds the original values behind `[EMAIL_1]` and
 * friends) are field ciphertexts bound to the row: `chat_sessions:<id>:title`, `chat_sessions:<id>:placeholder_vault`.
 * `label` is the highest label of any document content that ever entered the session; it is only ever raised.
 */
export const chatSessions = pgTable(
  'chat_sessions',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    model: text('model').notNull(),
    placeholderVault: text('placeholder_vault'),
    label: text('label').$type<Label>().notNull().default('PUBLIC'),
    /** Documents pinned to the session: their passages are read again (access-checked) at every turn. */
    pinnedDocumentIds: uuid('pinned_document_ids').array().notNull().default(sql`'{}'::uuid[]`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('chat_sessions_user_updated_idx').on(table.userId, table.updatedAt, table.id),
    check('chat_sessions_label_check', sql`${table.label} in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')`),
  ],
);

export interface ChatUsage {
  input_tokens: number | null;
  output_tokens: number | null;
}

/**
 * One message of a session. `content`, `tool_calls` and `citations` are field ciphertexts bound to the message id
 * (`chat_messages:<id>:content`, `chat_messages:<id>:tool_calls`, `chat_messages:<id>:citations`); `seq` orders a
 * session's messages. `label` is the session's label when the model was called (assistant) or of the passages a
 * search brought (tool); `routed_to` the local model a turn above CLOUD_MAX_LABEL went to.
 */
export const chatMessages = pgTable(
  'chat_messages',
  {
    id: id(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => chatSessions.id, { onDelete: 'cascade' }),
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity(),
    role: text('role').$type<ChatRole>().notNull(),
    content: text('content').notNull(),
    toolCalls: text('tool_calls'),
    toolCallId: text('tool_call_id'),
    toolName: text('tool_name'),
    status: text('status').$type<ChatMessageStatus>().notNull().default('completed'),
    model: text('model'),
    usage: jsonb('usage').$type<ChatUsage>(),
    /** Tokens of the plaintext (content and tool calls), counted once when stored, for the context window. */
    tokenCount: integer('token_count').notNull().default(0),
    label: text('label').$type<Label>(),
    routedTo: text('routed_to'),
    citations: text('citations'),
    createdAt: createdAt(),
    completedAt: timestampMs('completed_at'),
  },
  (table) => [
    index('chat_messages_session_seq_idx').on(table.sessionId, table.seq),
    check('chat_messages_role_check', sql`${table.role} in ('user', 'assistant', 'tool')`),
    check(
      'chat_messages_status_check',
      sql`${table.status} in ('completed', 'interrupted', 'error', 'awaiting_approval')`,
    ),
    check('chat_messages_label_check', sql`${table.label} is null or ${table.label} in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')`),
  ],
);

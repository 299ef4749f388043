import type { ChatMessageStatus, ChatUsage } from '../../db/schema/chat.js';
import type { Label } from '../../lib/labels.js';
import type { Citation } from './grounding.js';
import type { HistoryMessage } from './chat.context.js';
import type { ChatMessageRow, ChatSessionRow } from './chat.repository.js';

/** The fields of chat messages and sessions that leave the server. */
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
  label: Label | null;
  routed_to: string | null;
  citations: Citation[] | null;
  created_at: string;
}

export interface SessionView {
  id: string;
  title: string;
  model: string;
  label: Label;
  pinned_document_ids: string[];
  created_at: string;
  updated_at: string;
}

export interface SessionDetail extends SessionView {
  messages: MessageView[];
}

/** A stored message with its decrypted content, tool calls and citations. */
export function presentMessage(row: ChatMessageRow, decrypted: HistoryMessage, citations: Citation[] | null = null): MessageView {
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
    label: row.label,
    routed_to: row.routedTo,
    citations,
    created_at: row.createdAt.toISOString(),
  };
}

/** A stored session with its decrypted title. */
export function presentSession(row: ChatSessionRow, title: string): SessionView {
  return {
    id: row.id,
    title,
    model: row.model,
    label: row.label,
    pinned_document_ids: [...row.pinnedDocumentIds],
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

import type { ModelMessage } from 'ai';
import type { ChatRole } from '../../db/schema/chat.js';
import { PII_TYPES, type PiiCounts, type PiiType, type PlaceholderVault, type RedactionPolicy } from '../redaction/index.js';
import type { ChatToolDefinition } from './chat-tools.js';
import { MESSAGE_OVERHEAD_TOKENS } from './chat.tokens.js';

/** A tool call as stored with its assistant message (arguments as the tool received them, never placeholders). */
export interface StoredToolCall {
  tool_call_id: string;
  tool: string;
  args: Record<string, unknown>;
  /** Set while (or after) the call waited for an approval. */
  approval_id?: string;
}

/** What a tool message holds: the outcome the model is told about. */
export interface ToolResultPayload {
  /** `interrupted`: the call may or may not have taken effect (its outcome was never recorded). */
  status: 'completed' | 'failed' | 'rejected' | 'expired' | 'interrupted';
  result?: unknown;
  error?: string;
}

/** A stored message, decrypted. */
export interface HistoryMessage {
  id: string;
  role: ChatRole;
  content: string;
  toolCalls: StoredToolCall[];
  toolCallId: string | null;
  toolName: string | null;
  tokenCount: number;
}

export interface ContextCandidate {
  role: ChatRole;
  tokenCount: number;
}

/**
 * Which messages fit: the newest ones whose tokens (plus the per-message overhead) fit in `budget`, starting at a user
 * message so no tool result or answer is cut from what it answers. Empty answers (a failed call) are never sent.
 */
export function chooseContext<T extends ContextCandidate>(messages: readonly T[], budget: number): { kept: T[]; truncated: boolean } {
  const usable = messages.filter((m) => !(m.role === 'assistant' && m.tokenCount === 0));
  let used = 0;
  let start = usable.length;
  for (let i = usable.length - 1; i >= 0; i -= 1) {
    const cost = usable[i]!.tokenCount + MESSAGE_OVERHEAD_TOKENS;
    if (used + cost > budget) break;
    used += cost;
    start = i;
  }
  while (start < usable.length && usable[start]!.role !== 'user') start += 1;
  return { kept: usable.slice(start), truncated: start > 0 };
}

/**
 * Redaction for one model call: every string that goes out is passed through the session's placeholder vault. It
 * works on values, never on their serialised form: in JSON a tab or newline becomes `\t` / `\n`, which puts a letter
 * in front of the next value and defeats the detectors' word-boundary guards.
 */
export interface Redactor {
  text(value: string): string;
  /** Every string of a JSON-like value, object keys included. */
  deep<T>(value: T): T;
  /** Tool definitions as offered to the model: descriptions and every string of the input schema. */
  tools(tools: readonly ChatToolDefinition[]): ChatToolDefinition[];
  /** Occurrences replaced so far, per type. */
  readonly counts: PiiCounts;
}

/** Schema keywords whose strings are syntax (a regex, a type name, a reference), not prose: never rewritten. */
const SCHEMA_SYNTAX_KEYWORDS = new Set(['type', 'format', 'pattern', '$ref', '$schema', '$id', '$anchor', '$dynamicRef', 'contentEncoding', 'contentMediaType']);
/** Schema keywords whose object keys are regular expressions. */
const SCHEMA_PATTERN_KEYS = new Set(['patternProperties']);

export function createRedactor(vault: PlaceholderVault, policy?: RedactionPolicy): Redactor {
  const counts: PiiCounts = {};
  const text = (value: string): string => {
    const result = vault.redact(value, policy);
    for (const [type, n] of Object.entries(result.counts) as Array<[PiiType, number]>) counts[type] = (counts[type] ?? 0) + n;
    return result.text;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) out[text(key)] = walk(inner);
      return out;
    }
    return value;
  };
  // Property names are redacted like values (and `required` lists them the same way, so they stay consistent);
  // the model's arguments get them back through restoreToolArgs.
  const schema = (value: unknown, keyword: string | null): unknown => {
    if (typeof value === 'string') return keyword !== null && SCHEMA_SYNTAX_KEYWORDS.has(keyword) ? value : text(value);
    if (Array.isArray(value)) return value.map((item) => schema(item, keyword));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      const patternKeys = keyword !== null && SCHEMA_PATTERN_KEYS.has(keyword);
      for (const [key, inner] of Object.entries(value)) out[patternKeys ? key : text(key)] = schema(inner, key);
      return out;
    }
    return value;
  };
  return {
    text,
    deep: <T>(value: T): T => walk(value) as T,
    tools: (tools) =>
      tools.map((tool) => ({
        name: tool.name,
        ...(tool.description === undefined ? {} : { description: text(tool.description) }),
        input_schema: schema(tool.input_schema, null) as ChatToolDefinition['input_schema'],
      })),
    counts,
  };
}

/** The model's tool-call arguments with the session's placeholders replaced by their values, in keys and values. */
export function restoreToolArgs(vault: PlaceholderVault, args: Record<string, unknown>): Record<string, unknown> {
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return vault.restore(value);
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) out[vault.restore(key)] = walk(inner);
      return out;
    }
    return value;
  };
  return walk(args) as Record<string, unknown>;
}

/** A stored tool message (the JSON of its payload) with every value redacted, serialised again. */
function redactToolContent(content: string, redactor: Redactor): string {
  let payload: unknown;
  try {
    payload = JSON.parse(content);
  } catch {
    return redactor.text(content);
  }
  return JSON.stringify(redactor.deep(payload));
}

/** Audit-safe form of counts: `[{type, count}]` (a `SECRET` key would be masked by the audit sanitizer). */
export function countsForAudit(counts: PiiCounts): { total: number; entities: Array<{ type: PiiType; count: number }> } {
  const entities = PII_TYPES.filter((type) => (counts[type] ?? 0) > 0).map((type) => ({ type, count: counts[type]! }));
  return { total: entities.reduce((sum, e) => sum + e.count, 0), entities };
}

const identity: Redactor = { text: (value) => value, deep: (value) => value, tools: (tools) => [...tools], counts: {} };

/**
 * The provider's view of the conversation. Tool calls without a stored result (a stream that ended before the tool
 * ran) are left out, and so are results whose call is not in the window: providers reject either.
 */
export function toModelMessages(history: readonly HistoryMessage[], redactor: Redactor = identity): ModelMessage[] {
  const answered = new Set(history.filter((m) => m.role === 'tool' && m.toolCallId !== null).map((m) => m.toolCallId!));
  const called = new Set<string>();
  const out: ModelMessage[] = [];
  for (const message of history) {
    switch (message.role) {
      case 'user':
        out.push({ role: 'user', content: redactor.text(message.content) });
        break;
      case 'assistant': {
        const calls = message.toolCalls.filter((call) => answered.has(call.tool_call_id));
        if (calls.length === 0) {
          if (message.content !== '') out.push({ role: 'assistant', content: redactor.text(message.content) });
          break;
        }
        for (const call of calls) called.add(call.tool_call_id);
        out.push({
          role: 'assistant',
          content: [
            ...(message.content === '' ? [] : [{ type: 'text' as const, text: redactor.text(message.content) }]),
            ...calls.map((call) => ({
              type: 'tool-call' as const,
              toolCallId: call.tool_call_id,
              toolName: call.tool,
              input: redactor.deep(call.args),
            })),
          ],
        });
        break;
      }
      case 'tool': {
        if (message.toolCallId === null || !called.has(message.toolCallId)) break;
        out.push({
          role: 'tool',
          content: [
            {
              type: 'tool-result',
              toolCallId: message.toolCallId,
              toolName: message.toolName ?? 'tool',
              output: { type: 'text', value: redactor === identity ? message.content : redactToolContent(message.content, redactor) },
            },
          ],
        });
        break;
      }
    }
  }
  return out;
}

export const BASE_SYSTEM_PROMPT =
  'You are CDSA, an assistant for analysts who work with confidential data. Answer accurately and concisely. ' +
  'Use the tools you are offered when they help; some need a human approval before they run.';

export const PLACEHOLDER_SYSTEM_PROMPT =
  ' Personal data in this conversation has been replaced by placeholders such as [PERSON_1], [EMAIL_1], [PHONE_2] or [IBAN_1]. ' +
  'A placeholder always stands for the same value. Refer to these values by their placeholders, exactly as written, ' +
  'also in tool arguments; never guess the original values.';

export function systemPrompt(redacting: boolean): string {
  return redacting ? BASE_SYSTEM_PROMPT + PLACEHOLDER_SYSTEM_PROMPT : BASE_SYSTEM_PROMPT;
}

import { ValidationError } from '../../lib/errors.js';
import type { Label } from '../../lib/labels.js';
import type { ChatResponseFormat, ChatToolDefinition } from '../llm/providers/index.js';
import type { StatelessMessage, StatelessTurnInput } from '../chat/chat.service.js';
import type { Citation } from '../chat/grounding.js';
import type { AssistantMessageEvent, TurnEvent } from '../chat/turn.js';
import type { ChatCompletionBody, ChatMessageInput } from './openai.schemas.js';

/*
 * The OpenAI chat-completions format on both sides of the turn: the request becomes a stateless turn's input, and the
 * turn's typed events become `chat.completion.chunk` objects (streaming) or one `chat.completion` (not streaming).
 */

type JsonSchema = ChatToolDefinition['input_schema'];

function textOf(content: ChatMessageInput['content'], index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, p) => {
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw new ValidationError('Only text content is supported', [{ pointer: `/messages/${index}/content/${p}`, detail: `a ${part.type} part is not supported; send text` }]);
      }
      return part.text;
    })
    .join('');
}

function parseArguments(raw: string, pointer: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = raw.trim() === '' ? {} : JSON.parse(raw);
  } catch {
    throw new ValidationError('Tool call arguments must be JSON', [{ pointer, detail: 'is not valid JSON' }]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ValidationError('Tool call arguments must be a JSON object', [{ pointer, detail: 'must be a JSON object' }]);
  }
  return parsed as Record<string, unknown>;
}

function messagesOf(messages: readonly ChatMessageInput[]): StatelessMessage[] {
  return messages.map((message, i): StatelessMessage => {
    const content = textOf(message.content, i);
    switch (message.role) {
      case 'system':
      case 'developer':
        return { role: 'system', content };
      case 'user':
        return { role: 'user', content };
      case 'assistant':
        return {
          role: 'assistant',
          content,
          ...(message.tool_calls && message.tool_calls.length > 0
            ? {
                tool_calls: message.tool_calls.map((call, c) => ({
                  tool_call_id: call.id,
                  tool: call.function.name,
                  args: parseArguments(call.function.arguments, `/messages/${i}/tool_calls/${c}/function/arguments`),
                })),
              }
            : {}),
        };
      case 'tool':
        if (!message.tool_call_id) throw new ValidationError('A tool message needs tool_call_id', [{ pointer: `/messages/${i}/tool_call_id`, detail: 'is required' }]);
        return { role: 'tool', content, tool_call_id: message.tool_call_id };
    }
  });
}

function responseFormatOf(format: ChatCompletionBody['response_format']): ChatResponseFormat | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json' };
  const spec = format.json_schema;
  return {
    type: 'json',
    name: spec.name,
    ...(spec.description ? { description: spec.description } : {}),
    ...(spec.schema ? { schema: spec.schema as JsonSchema } : {}),
  };
}

/** The request as a stateless turn (the client holds the conversation; CDSA stores no session). */
export function toStatelessInput(body: ChatCompletionBody): StatelessTurnInput {
  const offerTools = body.tool_choice !== 'none';
  const tools: ChatToolDefinition[] = offerTools
    ? (body.tools ?? []).map((tool) => ({
        name: tool.function.name,
        ...(tool.function.description ? { description: tool.function.description } : {}),
        input_schema: (tool.function.parameters as JsonSchema | undefined) ?? { type: 'object', properties: {} },
      }))
    : [];
  const maxOutputTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  const responseFormat = responseFormatOf(body.response_format);
  return {
    messages: messagesOf(body.messages),
    model: body.model,
    ...(typeof body.temperature === 'number' ? { temperature: body.temperature } : {}),
    ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
    ...(tools.length > 0 ? { tools } : {}),
    ...(responseFormat ? { responseFormat } : {}),
    ...(body.cdsa?.document_ids ? { documentIds: body.cdsa.document_ids } : {}),
    ...(body.cdsa?.knowledge ? { knowledge: body.cdsa.knowledge } : {}),
  };
}

export interface CompletionMeta {
  /** `chatcmpl-...` */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model the turn runs on. */
  model: string;
  /** The pinned documents' label before the turn. */
  label: Label;
  /** The request had a `cdsa` object: the result always carries one then. */
  cdsaRequested: boolean;
}

interface ToolCallOut {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface CdsaResultView {
  citations: Citation[];
  label: Label;
  routed_to: string | null;
}

type FinishReason = 'stop' | 'tool_calls';

interface UsageView {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function usageOf(message: AssistantMessageEvent | undefined): UsageView {
  const input = message?.usage?.input_tokens ?? 0;
  const output = message?.usage?.output_tokens ?? 0;
  return { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
}

function toolCallsOf(message: AssistantMessageEvent): ToolCallOut[] {
  return (message.tool_calls ?? []).map((call) => ({ id: call.tool_call_id, type: 'function', function: { name: call.tool, arguments: JSON.stringify(call.args) } }));
}

/** What the turn said that the final chunk or response reports: citations, routing, the answering message. */
function createTurnSummary(meta: CompletionMeta) {
  const citations: Citation[] = [];
  let routedTo: string | null = null;
  let message: AssistantMessageEvent | undefined;
  return {
    /** Records what is not text; true when the event was consumed here. */
    note(event: TurnEvent): boolean {
      switch (event.type) {
        case 'citation': {
          const { type: _type, ...citation } = event;
          citations.push(citation);
          return true;
        }
        case 'routed':
          routedTo = event.to;
          return true;
        case 'message': {
          const { type: _type, ...rest } = event;
          message = rest;
          return true;
        }
        default:
          return false;
      }
    },
    get message() {
      return message;
    },
    model: () => message?.model ?? meta.model,
    cdsa(): CdsaResultView | undefined {
      const all = message?.citations ?? citations;
      if (!meta.cdsaRequested && all.length === 0 && routedTo === null) return undefined;
      return { citations: all.map((c) => ({ ...c })), label: message?.label ?? meta.label, routed_to: message?.routed_to ?? routedTo };
    },
  };
}

/**
 * Streaming: each turn event becomes zero or more `chat.completion.chunk` objects. Text streams as content deltas
 * (already restored from placeholders); the client's tool calls come whole, with restored arguments, once the model
 * finished proposing them; server-side calls (search_documents) never reach the client. The last chunk has the
 * finish reason and `cdsa`; with `include_usage`, one more chunk with `choices: []` and the usage.
 */
export function createChunkStream(meta: CompletionMeta, options: { includeUsage: boolean }) {
  const summary = createTurnSummary(meta);
  let started = false;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: summary.model(),
    system_fingerprint: null,
    choices,
    ...extra,
  });
  const delta = (content: Record<string, unknown>, finish: FinishReason | null = null) => ({ index: 0, delta: content, logprobs: null, finish_reason: finish });
  const opening = (): unknown[] => {
    if (started) return [];
    started = true;
    return [chunk([delta({ role: 'assistant', content: '' })])];
  };

  return {
    /** The chunks this event becomes, in order; `done` ends with the usage chunk (when asked for). */
    chunks(event: TurnEvent): unknown[] {
      if (event.type === 'token') return [...opening(), chunk([delta({ content: event.delta })])];
      if (summary.note(event)) {
        if (event.type !== 'message') return [];
        const calls = toolCallsOf(summary.message!);
        const out = opening();
        if (calls.length > 0) out.push(chunk([delta({ tool_calls: calls.map((call, index) => ({ index, ...call })) })]));
        const cdsa = summary.cdsa();
        out.push(chunk([delta({}, calls.length > 0 ? 'tool_calls' : 'stop')], cdsa ? { cdsa } : {}));
        if (options.includeUsage) out.push(chunk([], { usage: usageOf(summary.message) }));
        return out;
      }
      return [];
    },
  };
}

/** Not streaming: the turn's events collected into one `chat.completion`. */
export function createCompletionCollector(meta: CompletionMeta) {
  const summary = createTurnSummary(meta);
  let text = '';
  return {
    add(event: TurnEvent): void {
      if (event.type === 'token') text += event.delta;
      else summary.note(event);
    },
    completion() {
      const message = summary.message;
      const calls = message ? toolCallsOf(message) : [];
      const cdsa = summary.cdsa();
      return {
        id: meta.id,
        object: 'chat.completion' as const,
        created: meta.created,
        model: summary.model(),
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant' as const,
              // Every step's text, as a streaming client sees it (a search step's text included).
              content: text === '' && calls.length > 0 ? null : text,
              refusal: null,
              ...(calls.length > 0 ? { tool_calls: calls } : {}),
            },
            logprobs: null,
            finish_reason: (calls.length > 0 ? 'tool_calls' : 'stop') as FinishReason,
          },
        ],
        usage: usageOf(message),
        ...(cdsa ? { cdsa } : {}),
      };
    },
  };
}

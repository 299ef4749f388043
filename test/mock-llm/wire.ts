import { splitInto, type MockFinishReason } from './script.js';

/**
 * Encoders for the four providers' wire formats, as their public APIs send them: OpenAI chat completions (SSE
 * `data:` chunks ending in `[DONE]`), Ollama `/api/chat` (NDJSON), Anthropic messages (named SSE events) and Gemini
 * `streamGenerateContent?alt=sse`. Each method returns the frames to write, one network write per frame.
 */

export type WireFormat = 'openai' | 'ollama' | 'anthropic' | 'gemini';

export interface WireToolCall {
  id: string;
  name: string;
  args: Record<string, unknown>;
  fragments: number;
}

export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
}

export interface StreamEncoder {
  readonly contentType: string;
  start(): string[];
  text(delta: string): string[];
  toolCall(call: WireToolCall): string[];
  finish(reason: MockFinishReason, usage: WireUsage): string[];
  /** An error reported inside an already started stream. */
  error(message: string): string[];
}

export interface CompleteReply {
  text: string;
  toolCalls: WireToolCall[];
  reason: MockFinishReason;
  usage: WireUsage;
}

const sse = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
const namedSse = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const ndjson = (data: unknown): string => `${JSON.stringify(data)}\n`;
const unixSeconds = (): number => Math.floor(Date.now() / 1000);

let responseCounter = 0;
function nextId(prefix: string): string {
  responseCounter += 1;
  return `${prefix}${responseCounter.toString(36).padStart(8, '0')}`;
}

// OpenAI chat completions ---------------------------------------------------------------------------------------------

const openaiFinish: Record<MockFinishReason, string> = { stop: 'stop', length: 'length', tool_calls: 'tool_calls' };

export function openaiStream(model: string, includeUsage: boolean): StreamEncoder {
  const id = nextId('chatcmpl-');
  const created = unixSeconds();
  let toolIndex = 0;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
    sse({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: null, choices, ...extra });
  const choice = (delta: Record<string, unknown>, finishReason: string | null = null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason,
  });
  return {
    contentType: 'text/event-stream',
    start: () => [chunk([choice({ role: 'assistant', content: '', refusal: null })])],
    text: (delta) => [chunk([choice({ content: delta })])],
    toolCall(call) {
      const index = toolIndex++;
      const pieces = splitInto(JSON.stringify(call.args), call.fragments);
      return [
        chunk([
          choice({
            tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }],
          }),
        ]),
        ...pieces.map((arguments_) => chunk([choice({ tool_calls: [{ index, function: { arguments: arguments_ } }] })])),
      ];
    },
    finish(reason, usage) {
      const frames = [chunk([choice({}, openaiFinish[reason])])];
      if (includeUsage) {
        frames.push(
          chunk([], {
            usage: {
              prompt_tokens: usage.input_tokens,
              completion_tokens: usage.output_tokens,
              total_tokens: usage.input_tokens + usage.output_tokens,
            },
          }),
        );
      }
      frames.push('data: [DONE]\n\n');
      return frames;
    },
    error: (message) => [sse({ error: { message, type: 'server_error', param: null, code: null } }), 'data: [DONE]\n\n'],
  };
}

export function openaiComplete(model: string, reply: CompleteReply): unknown {
  return {
    id: nextId('chatcmpl-'),
    object: 'chat.completion',
    created: unixSeconds(),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: reply.toolCalls.length > 0 && reply.text === '' ? null : reply.text,
          refusal: null,
          ...(reply.toolCalls.length > 0 && {
            tool_calls: reply.toolCalls.map((call) => ({
              id: call.id,
              type: 'function',
              function: { name: call.name, arguments: JSON.stringify(call.args) },
            })),
          }),
        },
        logprobs: null,
        finish_reason: openaiFinish[reply.reason],
      },
    ],
    usage: {
      prompt_tokens: reply.usage.input_tokens,
      completion_tokens: reply.usage.output_tokens,
      total_tokens: reply.usage.input_tokens + reply.usage.output_tokens,
    },
  };
}

function openaiErrorType(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 404) return { type: 'invalid_request_error', code: 'model_not_found' };
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' };
  return { type: 'server_error', code: null };
}

// Ollama /api/chat ----------------------------------------------------------------------------------------------------

export function ollamaStream(model: string): StreamEncoder {
  const message = (content: string, extra: Record<string, unknown> = {}) => ({
    model,
    created_at: new Date().toISOString(),
    message: { role: 'assistant', content, ...extra },
    done: false,
  });
  return {
    contentType: 'application/x-ndjson',
    start: () => [],
    text: (delta) => [ndjson(message(delta))],
    toolCall: (call) => [
      ndjson(message('', { tool_calls: [{ id: call.id, function: { name: call.name, arguments: call.args } }] })),
    ],
    finish: (reason, usage) => [
      ndjson({
        model,
        created_at: new Date().toISOString(),
        message: { role: 'assistant', content: '' },
        done: true,
        // Ollama reports `stop` after tool calls too.
        done_reason: reason === 'length' ? 'length' : 'stop',
        total_duration: 1_000_000,
        load_duration: 100_000,
        prompt_eval_count: usage.input_tokens,
        prompt_eval_duration: 200_000,
        eval_count: usage.output_tokens,
        eval_duration: 700_000,
      }),
    ],
    error: (message) => [ndjson({ error: message })],
  };
}

export function ollamaComplete(model: string, reply: CompleteReply): unknown {
  return {
    model,
    created_at: new Date().toISOString(),
    message: {
      role: 'assistant',
      content: reply.text,
      ...(reply.toolCalls.length > 0 && {
        tool_calls: reply.toolCalls.map((call) => ({ id: call.id, function: { name: call.name, arguments: call.args } })),
      }),
    },
    done: true,
    done_reason: reply.reason === 'length' ? 'length' : 'stop',
    prompt_eval_count: reply.usage.input_tokens,
    eval_count: reply.usage.output_tokens,
  };
}

// Anthropic messages --------------------------------------------------------------------------------------------------

const anthropicStop: Record<MockFinishReason, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use' };

export function anthropicStream(model: string, inputTokens: () => number): StreamEncoder {
  const id = nextId('msg_');
  let index = -1;
  let openBlock: 'text' | 'tool_use' | null = null;
  const closeBlock = (): string[] => {
    if (openBlock === null) return [];
    openBlock = null;
    return [namedSse('content_block_stop', { type: 'content_block_stop', index })];
  };
  return {
    contentType: 'text/event-stream',
    start: () => [
      namedSse('message_start', {
        type: 'message_start',
        message: {
          id,
          type: 'message',
          role: 'assistant',
          content: [],
          model,
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: inputTokens(), output_tokens: 1 },
        },
      }),
      namedSse('ping', { type: 'ping' }),
    ],
    text(delta) {
      const frames: string[] = [];
      if (openBlock !== 'text') {
        frames.push(...closeBlock());
        index += 1;
        openBlock = 'text';
        frames.push(
          namedSse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }),
        );
      }
      frames.push(
        namedSse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: delta } }),
      );
      return frames;
    },
    toolCall(call) {
      const frames = closeBlock();
      index += 1;
      openBlock = 'tool_use';
      frames.push(
        namedSse('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
        }),
      );
      for (const partial of splitInto(JSON.stringify(call.args), call.fragments)) {
        frames.push(
          namedSse('content_block_delta', {
            type: 'content_block_delta',
            index,
            delta: { type: 'input_json_delta', partial_json: partial },
          }),
        );
      }
      frames.push(...closeBlock());
      return frames;
    },
    finish: (reason, usage) => [
      ...closeBlock(),
      namedSse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: anthropicStop[reason], stop_sequence: null },
        usage: { output_tokens: usage.output_tokens },
      }),
      namedSse('message_stop', { type: 'message_stop' }),
    ],
    error: (message) => [namedSse('error', { type: 'error', error: { type: 'api_error', message } })],
  };
}

export function anthropicComplete(model: string, reply: CompleteReply): unknown {
  const content: unknown[] = [];
  if (reply.text !== '') content.push({ type: 'text', text: reply.text });
  for (const call of reply.toolCalls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: call.args });
  return {
    id: nextId('msg_'),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: anthropicStop[reply.reason],
    stop_sequence: null,
    usage: { input_tokens: reply.usage.input_tokens, output_tokens: reply.usage.output_tokens },
  };
}

function anthropicErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 529) return 'overloaded_error';
  return status >= 500 ? 'api_error' : 'invalid_request_error';
}

// Gemini streamGenerateContent ----------------------------------------------------------------------------------------

const geminiFinish: Record<MockFinishReason, string> = { stop: 'STOP', length: 'MAX_TOKENS', tool_calls: 'STOP' };

export function geminiStream(model: string): StreamEncoder {
  const responseId = nextId('resp-');
  const candidate = (parts: unknown[], extra: Record<string, unknown> = {}) =>
    sse({ candidates: [{ content: { parts, role: 'model' }, index: 0, ...extra }], modelVersion: model, responseId });
  return {
    contentType: 'text/event-stream',
    start: () => [],
    text: (delta) => [candidate([{ text: delta }])],
    toolCall: (call) => [candidate([{ functionCall: { name: call.name, args: call.args } }])],
    finish: (reason, usage) => [
      sse({
        candidates: [{ content: { parts: [{ text: '' }], role: 'model' }, finishReason: geminiFinish[reason], index: 0 }],
        usageMetadata: {
          promptTokenCount: usage.input_tokens,
          candidatesTokenCount: usage.output_tokens,
          totalTokenCount: usage.input_tokens + usage.output_tokens,
        },
        modelVersion: model,
        responseId,
      }),
    ],
    error: (message) => [sse({ error: { code: 500, message, status: 'INTERNAL' } })],
  };
}

export function geminiComplete(model: string, reply: CompleteReply): unknown {
  const parts: unknown[] = [];
  if (reply.text !== '') parts.push({ text: reply.text });
  for (const call of reply.toolCalls) parts.push({ functionCall: { name: call.name, args: call.args } });
  return {
    candidates: [{ content: { parts, role: 'model' }, finishReason: geminiFinish[reply.reason], index: 0 }],
    usageMetadata: {
      promptTokenCount: reply.usage.input_tokens,
      candidatesTokenCount: reply.usage.output_tokens,
      totalTokenCount: reply.usage.input_tokens + reply.usage.output_tokens,
    },
    modelVersion: model,
  };
}

function geminiStatus(status: number): string {
  if (status === 400 || status === 401) return 'INVALID_ARGUMENT';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 429) return 'RESOURCE_EXHAUSTED';
  return 'INTERNAL';
}

// Errors --------------------------------------------------------------------------------------------------------------

/** The body each provider sends with an HTTP error status. */
export function errorBody(wire: WireFormat, status: number, message: string): unknown {
  switch (wire) {
    case 'openai':
      return { error: { message, param: null, ...openaiErrorType(status) } };
    case 'ollama':
      return { error: message };
    case 'anthropic':
      return { type: 'error', error: { type: anthropicErrorType(status), message } };
    case 'gemini':
      return { error: { code: status, message, status: geminiStatus(status) } };
  }
}

/** What the real services say for a rejected key; OpenAI's message echoes the key it received. */
export function defaultErrorMessage(wire: WireFormat, status: number, presentedKey: string | undefined): string {
  if (status === 401) {
    if (wire === 'openai') {
      return `Incorrect API key provided: ${presentedKey ?? ''}. You can find your API key at https://platform.openai.com/account/api-keys.`;
    }
    if (wire === 'anthropic') return `invalid x-api-key ${presentedKey ?? ''}`;
    if (wire === 'gemini') return 'API key not valid. Please pass a valid API key.';
  }
  if (status === 404) return 'model not found';
  if (status === 429) return 'Rate limit reached';
  return 'The server had an error while processing your request.';
}

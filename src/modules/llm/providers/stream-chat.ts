import type {
  LanguageModelV3,
  LanguageModelV3FunctionTool,
  LanguageModelV3Prompt,
  LanguageModelV3StreamPart,
  LanguageModelV3ToolResultOutput,
} from '@ai-sdk/provider';
import type { FinishReason, JSONSchema7, ModelMessage } from 'ai';
import {
  InvalidToolCallError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  toProviderError,
  type LlmProviderError,
  type TimeoutPhase,
} from './errors.js';
import type { ProviderName } from './model-id.js';
import { reportSdkWarnings } from './sdk-warnings.js';

/** A language model of an AI SDK provider package. */
export type ChatModel = LanguageModelV3;

/** A tool offered to the model. The model only proposes calls; CDSA runs them itself, after any approval. */
export interface ChatToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  input_schema: JSONSchema7;
}

/** What the answer must be: JSON, optionally matching a schema. */
export type ChatResponseFormat = { type: 'text' } | { type: 'json'; schema?: JSONSchema7; name?: string; description?: string };

export interface TokenUsage {
  /** null when the provider did not report it. */
  input_tokens: number | null;
  output_tokens: number | null;
}

export type ChatStreamEvent =
  | { type: 'text'; delta: string }
  | { type: 'tool_call'; toolCallId: string; toolName: string; args: Record<string, unknown> }
  | { type: 'finish'; finishReason: FinishReason; usage: TokenUsage }
  | { type: 'error'; error: LlmProviderError };

export interface StreamChatOptions {
  messages: ModelMessage[];
  system?: string;
  tools?: ChatToolDefinition[];
  temperature?: number;
  maxOutputTokens?: number;
  /**
   * JSON output (OpenAI's `response_format`), passed to the provider where its API has it; a provider without it
   * answers as usual and the SDK logs a warning.
   */
  responseFormat?: ChatResponseFormat;
  /** Aborting closes the upstream connection at once; the iteration then ends without a further event. */
  abortSignal?: AbortSignal;
  /** Longest wait for the first chunk. */
  timeoutMs: number;
  /** Longest wait between two chunks (default: `timeoutMs`). */
  stallTimeoutMs?: number;
}

/**
 * One model call (one step: the caller loops after running tools), normalized to text, tool_call, then exactly one
 * `finish` or `error` event. Breaking out of the loop early, like aborting, closes the upstream connection.
 *
 * The provider's own streaming call (`doStream` of the AI SDK provider packages, which speak each vendor's wire
 * format) is read directly, without `streamText` around it: that wrapper's prompt validation, telemetry spans and
 * chain of web streams cost about 2.5 ms of CPU before the first token, and nothing it adds is used here — the caller
 * runs its own step loop, validates nothing through it, and never lets the SDK execute tools.
 */
export function streamModel(
  model: ChatModel,
  provider: ProviderName,
  options: StreamChatOptions,
  secrets: readonly string[],
): AsyncIterable<ChatStreamEvent> {
  const tools = toFunctionTools(options.tools ?? []);
  const stallTimeoutMs = options.stallTimeoutMs ?? options.timeoutMs;

  return {
    async *[Symbol.asyncIterator]() {
      const callerSignal = options.abortSignal;
      if (callerSignal?.aborted) return;
      const controller = new AbortController();
      const onCallerAbort = (): void => controller.abort(callerSignal?.reason);
      callerSignal?.addEventListener('abort', onCallerAbort, { once: true });

      let timedOut: ProviderTimeoutError | null = null;
      let upstreamSeen = false;
      let timer: NodeJS.Timeout | undefined;
      // The watchdog runs only while waiting on the provider, never while the consumer holds an event.
      const arm = (): void => {
        const phase: TimeoutPhase = upstreamSeen ? 'stall' : 'first_token';
        const ms = upstreamSeen ? stallTimeoutMs : options.timeoutMs;
        timer = setTimeout(() => {
          timedOut = new ProviderTimeoutError(provider, phase, ms);
          controller.abort(timedOut);
        }, ms);
      };

      // What to tell the consumer once the stream stopped for an abort or an error.
      const ending = (error: unknown): ChatStreamEvent | null => {
        if (timedOut !== null) return { type: 'error', error: timedOut };
        if (callerSignal?.aborted) return null;
        return { type: 'error', error: toProviderError(provider, error, secrets) };
      };

      let reader: ReadableStreamDefaultReader<LanguageModelV3StreamPart> | undefined;
      try {
        arm();
        try {
          const prompt = toPrompt(options.system, options.messages);
          const { stream } = await model.doStream({
            prompt,
            tools,
            toolChoice: tools ? { type: 'auto' } : undefined,
            temperature: options.temperature,
            maxOutputTokens: options.maxOutputTokens,
            ...(options.responseFormat ? { responseFormat: options.responseFormat } : {}),
            abortSignal: controller.signal,
            // Raw chunks are not requested: they cost a third of the per-chunk time.
            includeRawChunks: false,
          });
          reader = stream.getReader();
        } catch (error) {
          const event = ending(error);
          if (event) yield event;
          return;
        } finally {
          clearTimeout(timer);
        }

        for (;;) {
          let next: Awaited<ReturnType<ReadableStreamDefaultReader<LanguageModelV3StreamPart>['read']>>;
          arm();
          try {
            next = await reader.read();
          } catch (error) {
            const event = ending(error);
            if (event) yield event;
            return;
          } finally {
            clearTimeout(timer);
          }
          if (next.done) {
            const event = ending(new ProviderUnavailableError(provider, 'the stream ended without a finish'));
            if (event) yield event;
            return;
          }
          const part = next.value;
          // Everything after `stream-start` (sent as the response opens) comes from the provider's answer.
          if (part.type !== 'stream-start') upstreamSeen = true;
          switch (part.type) {
            case 'stream-start':
              reportSdkWarnings(part.warnings, model.provider, model.modelId);
              break;
            case 'text-delta':
              // OpenAI-compatible servers open with an empty content delta.
              if (part.delta !== '') yield { type: 'text', delta: part.delta };
              break;
            case 'tool-call': {
              const args = parseToolInput(part.input);
              if (!isPlainObject(args)) {
                yield { type: 'error', error: new InvalidToolCallError(provider, part.toolName, 'the arguments are not an object') };
                return;
              }
              yield { type: 'tool_call', toolCallId: part.toolCallId, toolName: part.toolName, args };
              break;
            }
            case 'finish':
              yield {
                type: 'finish',
                finishReason: part.finishReason.unified,
                usage: { input_tokens: part.usage.inputTokens.total ?? null, output_tokens: part.usage.outputTokens.total ?? null },
              };
              return;
            case 'error': {
              const event = ending(part.error);
              if (event) yield event;
              return;
            }
            default:
              break;
          }
        }
      } finally {
        clearTimeout(timer);
        callerSignal?.removeEventListener('abort', onCallerAbort);
        // Closes the upstream connection when the consumer stopped early; a no-op after a complete response.
        controller.abort();
        reader?.cancel().catch(() => undefined);
      }
    },
  };
}

/** The arguments of a proposed call: JSON text from the provider ("" meaning no arguments), or undefined if unreadable. */
function parseToolInput(input: string): unknown {
  if (input.trim() === '') return {};
  try {
    return JSON.parse(input) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The conversation in the providers' common prompt format. Only what the chat sends is accepted (text, tool calls,
 * tool results); anything else is a programming error, reported before any request is made.
 */
export function toPrompt(system: string | undefined, messages: readonly ModelMessage[]): LanguageModelV3Prompt {
  const prompt: LanguageModelV3Prompt = [];
  if (system !== undefined && system !== '') prompt.push({ role: 'system', content: system });
  for (const message of messages) {
    switch (message.role) {
      case 'system':
        prompt.push({ role: 'system', content: message.content });
        break;
      case 'user':
        prompt.push({
          role: 'user',
          content:
            typeof message.content === 'string'
              ? [{ type: 'text', text: message.content }]
              : message.content.map((part) => {
                  if (part.type !== 'text') throw new TypeError(`unsupported user content: ${part.type}`);
                  return { type: 'text' as const, text: part.text };
                }),
        });
        break;
      case 'assistant':
        prompt.push({
          role: 'assistant',
          content:
            typeof message.content === 'string'
              ? [{ type: 'text', text: message.content }]
              : message.content.map((part) => {
                  if (part.type === 'text') return { type: 'text' as const, text: part.text };
                  if (part.type === 'tool-call') {
                    return { type: 'tool-call' as const, toolCallId: part.toolCallId, toolName: part.toolName, input: part.input };
                  }
                  throw new TypeError(`unsupported assistant content: ${part.type}`);
                }),
        });
        break;
      case 'tool':
        prompt.push({
          role: 'tool',
          content: message.content.map((part) => {
            if (part.type !== 'tool-result') throw new TypeError(`unsupported tool content: ${part.type}`);
            return { type: 'tool-result' as const, toolCallId: part.toolCallId, toolName: part.toolName, output: part.output as LanguageModelV3ToolResultOutput };
          }),
        });
        break;
    }
  }
  return prompt;
}

function toFunctionTools(definitions: ChatToolDefinition[]): LanguageModelV3FunctionTool[] | undefined {
  if (definitions.length === 0) return undefined;
  // No `execute` anywhere: the model proposes, CDSA decides and executes.
  return definitions.map((definition) => ({
    type: 'function',
    name: definition.name,
    description: definition.description,
    inputSchema: definition.input_schema,
  }));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

import {
  jsonSchema,
  streamText,
  tool,
  type FinishReason,
  type JSONSchema7,
  type LanguageModel,
  type ModelMessage,
  type TextStreamPart,
  type Tool,
  type ToolSet,
} from 'ai';
import {
  InvalidToolCallError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  toProviderError,
  type LlmProviderError,
  type TimeoutPhase,
} from './errors.js';
import type { ProviderName } from './model-id.js';

/** A model object of the AI SDK (not a model id string). */
export type ChatModel = Exclude<LanguageModel, string>;

/** A tool offered to the model. The model only proposes calls; CDSA runs them itself, after any approval. */
export interface ChatToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  input_schema: JSONSchema7;
}

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
 */
export function streamModel(
  model: ChatModel,
  provider: ProviderName,
  options: StreamChatOptions,
  secrets: readonly string[],
): AsyncIterable<ChatStreamEvent> {
  const tools = toToolSet(options.tools ?? []);
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

      const result = streamText({
        model,
        system: options.system,
        messages: options.messages,
        tools,
        temperature: options.temperature,
        maxOutputTokens: options.maxOutputTokens,
        // Retries would multiply the time to an error; the caller decides what to do with one.
        maxRetries: 0,
        abortSignal: controller.signal,
        // Errors arrive as stream parts below; the default handler would print them.
        onError: () => undefined,
      });
      const parts = result.fullStream[Symbol.asyncIterator]();

      // What to tell the consumer once the stream stopped for an abort or an error.
      const ending = (error: unknown): ChatStreamEvent | null => {
        if (timedOut !== null) return { type: 'error', error: timedOut };
        if (callerSignal?.aborted) return null;
        return { type: 'error', error: toProviderError(provider, error, secrets) };
      };

      try {
        for (;;) {
          let next: IteratorResult<TextStreamPart<ToolSet>>;
          arm();
          try {
            next = await parts.next();
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
          // Everything after the start markers comes from the provider's answer (raw chunks are not requested:
          // they cost a third of the per-chunk time).
          if (part.type !== 'start' && part.type !== 'start-step') upstreamSeen = true;
          switch (part.type) {
            case 'text-delta':
              // OpenAI-compatible servers open with an empty content delta.
              if (part.text !== '') yield { type: 'text', delta: part.text };
              break;
            case 'tool-call': {
              const args: unknown = part.input;
              if (part.invalid === true) {
                yield { type: 'error', error: toProviderError(provider, part.error, secrets) };
                return;
              }
              if (!isPlainObject(args)) {
                const error = new InvalidToolCallError(provider, part.toolName, 'the arguments are not an object');
                yield { type: 'error', error };
                return;
              }
              yield { type: 'tool_call', toolCallId: part.toolCallId, toolName: part.toolName, args };
              break;
            }
            case 'finish':
              yield {
                type: 'finish',
                finishReason: part.finishReason,
                usage: {
                  input_tokens: part.totalUsage.inputTokens ?? null,
                  output_tokens: part.totalUsage.outputTokens ?? null,
                },
              };
              return;
            case 'error': {
              const event = ending(part.error);
              if (event) yield event;
              return;
            }
            case 'abort': {
              const event = ending(new ProviderUnavailableError(provider, 'the request was aborted'));
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
        parts.return?.().catch(() => undefined);
      }
    },
  };
}

function toToolSet(definitions: ChatToolDefinition[]): ToolSet | undefined {
  if (definitions.length === 0) return undefined;
  const set: Record<string, Tool> = {};
  for (const definition of definitions) {
    // No `execute`: the model proposes, CDSA decides and executes.
    set[definition.name] = tool({
      description: definition.description,
      inputSchema: jsonSchema<Record<string, unknown>>(definition.input_schema),
    });
  }
  return set;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

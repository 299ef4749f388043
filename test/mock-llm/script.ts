/**
 * The script language of the mock LLM: each chat request the mock receives takes the next scripted response from a
 * queue and plays its steps in the wire format of the endpoint that was called.
 */

export type MockStep =
  /** One streamed text chunk. */
  | { type: 'text'; text: string }
  /**
   * One tool call. In the SSE formats its JSON arguments are sent in `fragments` pieces (default 3), one event each,
   * the way real servers stream them; Ollama and Gemini send a tool call whole, as the real servers do.
   */
  | { type: 'tool_call'; name: string; args: Record<string, unknown>; id?: string; fragments?: number }
  /** Wait before the next step. */
  | { type: 'delay'; ms: number }
  /** Token usage reported at the end (otherwise a deterministic estimate). */
  | { type: 'usage'; input_tokens: number; output_tokens: number }
  /** Send the response headers (and the format's preamble) now rather than with the first chunk. */
  | { type: 'headers' }
  /**
   * Before any output: an HTTP error response with the provider's error body. After output has started: the
   * provider's in-stream error event, then the stream ends.
   */
  | { type: 'error'; status: number; message?: string }
  /** Send nothing more and keep the connection open until the client gives up. */
  | { type: 'hang' }
  /** Destroy the connection abruptly. */
  | { type: 'drop' };

export type MockFinishReason = 'stop' | 'length' | 'tool_calls';

export interface MockResponse {
  steps: MockStep[];
  /** Delay before every text chunk and tool-call fragment after the first. */
  chunkDelayMs?: number;
  /** Default: `tool_calls` when the steps contain a tool call, else `stop`. */
  finishReason?: MockFinishReason;
}

/** A reply streamed as `chunks` text pieces, `chunkDelayMs` apart. */
export function textReply(
  chunks: string[],
  options: { chunkDelayMs?: number; usage?: [number, number] } = {},
): MockResponse {
  const steps: MockStep[] = chunks.map((text) => ({ type: 'text', text }));
  if (options.usage) steps.push({ type: 'usage', input_tokens: options.usage[0], output_tokens: options.usage[1] });
  return { steps, chunkDelayMs: options.chunkDelayMs };
}

/** A reply that proposes one tool call, optionally after some text. */
export function toolCallReply(
  name: string,
  args: Record<string, unknown>,
  options: { id?: string; fragments?: number; text?: string[]; chunkDelayMs?: number } = {},
): MockResponse {
  const steps: MockStep[] = (options.text ?? []).map((text) => ({ type: 'text', text }));
  steps.push({ type: 'tool_call', name, args, id: options.id, fragments: options.fragments });
  return { steps, chunkDelayMs: options.chunkDelayMs };
}

/** Split `value` into `parts` non-empty pieces of nearly equal length. */
export function splitInto(value: string, parts: number): string[] {
  const count = Math.max(1, Math.min(parts, value.length));
  const size = Math.ceil(value.length / count);
  const pieces: string[] = [];
  for (let i = 0; i < value.length; i += size) pieces.push(value.slice(i, i + size));
  return pieces;
}

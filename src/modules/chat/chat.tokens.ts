import type { Tiktoken } from 'js-tiktoken/lite';

/**
 * Token counts for the context window, with a real BPE tokenizer (cl100k_base). Providers tokenize differently, so the
 * count is an estimate for non-OpenAI models; the window keeps a reserve for that and for the answer.
 *
 * The rank table takes most of a second to build, so it is loaded once per process, on first use.
 */
let loading: Promise<Tiktoken> | null = null;
let encoder: Tiktoken | null = null;

/** Roles, separators and the like cost a few tokens per message on every provider. */
export const MESSAGE_OVERHEAD_TOKENS = 4;

export function loadTokenizer(): Promise<Tiktoken> {
  loading ??= Promise.all([import('js-tiktoken/lite'), import('js-tiktoken/ranks/cl100k_base')]).then(
    ([lite, ranks]) => {
      encoder = new lite.Tiktoken(ranks.default);
      return encoder;
    },
    (error: unknown) => {
      // A failed load is retried by the next caller rather than remembered.
      loading = null;
      throw error;
    },
  );
  return loading;
}

/** Counts with the loaded tokenizer; call `loadTokenizer()` (once) first. */
export function countTokens(text: string): number {
  if (text === '') return 0;
  if (!encoder) throw new Error('the tokenizer is not loaded yet');
  // Special-token text in user input is counted as ordinary text, never rejected.
  return encoder.encode(text, [], []).length;
}

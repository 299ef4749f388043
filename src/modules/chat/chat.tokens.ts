import type { Tiktoken } from 'js-tiktoken/lite';

/**
 * Token counts for the context window, with a real BPE tokenizer (cl100k_base). Providers tokenize differently, so the
 * count is an estimate for non-OpenAI models; the window keeps a reserve for that and for the answer.
 *
 * The rank table takes most of a second to build, so it is loaded once per process, on first use.
 */
let loading: Promise<Tiktoken> | null = null;
let encoder: Tiktoken | null = null;
/** The encoding's pre-tokenization pattern, compiled once (the library compiles it, and more, on every encode). */
let pieces: RegExp | null = null;

/** Roles, separators and the like cost a few tokens per message on every provider. */
export const MESSAGE_OVERHEAD_TOKENS = 4;

/**
 * Tokens per pre-tokenized piece (a word with its leading space, a number group, a run of punctuation). Pieces repeat
 * a lot in any language, so most are counted without byte-pair merging. Bounded by starting over when full: cheaper
 * per hit than least-recently-used bookkeeping, and the common pieces come back within a few messages.
 */
const PIECE_CACHE_SIZE = 50_000;
/** Longer pieces (a base64 blob, a long identifier) are rare enough not to be worth remembering. */
const CACHED_PIECE_LENGTH = 32;
const pieceTokens = new Map<string, number>();

export function loadTokenizer(): Promise<Tiktoken> {
  loading ??= Promise.all([import('js-tiktoken/lite'), import('js-tiktoken/ranks/cl100k_base')]).then(
    ([lite, ranks]) => {
      encoder = new lite.Tiktoken(ranks.default);
      pieces = new RegExp(ranks.default.pat_str, 'gu');
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

/**
 * Counts with the loaded tokenizer; call `loadTokenizer()` (once) first. The same count as encoding the whole text:
 * BPE never merges across pre-tokenization pieces, and a piece split again on its own is the same one piece, so the
 * text's count is the sum of its pieces' counts.
 */
export function countTokens(text: string): number {
  if (text === '') return 0;
  if (!encoder || !pieces) throw new Error('the tokenizer is not loaded yet');
  let total = 0;
  pieces.lastIndex = 0;
  for (let match = pieces.exec(text); match !== null; match = pieces.exec(text)) {
    const piece = match[0];
    if (piece === '') {
      // Never reached with cl100k_base (no alternative matches empty), but an empty match must not loop forever.
      pieces.lastIndex += 1;
      continue;
    }
    const cacheable = piece.length <= CACHED_PIECE_LENGTH;
    let tokens = cacheable ? pieceTokens.get(piece) : undefined;
    if (tokens === undefined) {
      // Special-token text in user input is counted as ordinary text, never rejected.
      tokens = encoder.encode(piece, [], []).length;
      if (cacheable) {
        if (pieceTokens.size >= PIECE_CACHE_SIZE) pieceTokens.clear();
        // A copy as the key: the match may be a slice that would keep the whole text alive.
        pieceTokens.set(Buffer.from(piece, 'utf8').toString('utf8'), tokens);
      }
    }
    total += tokens;
  }
  return total;
}

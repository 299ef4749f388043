import type { Extraction } from './documents.extract.js';

export interface ChunkingOptions {
  /** Target (and maximum, but for a single overlong sentence) tokens per chunk. */
  chunkTokens: number;
  /** Tokens of the previous chunk's last blocks repeated at the start of the next. */
  overlapTokens: number;
  countTokens(text: string): number;
}

export interface DocumentChunk {
  index: number;
  text: string;
  page: number | null;
  headingPath: string[];
  charStart: number;
  charEnd: number;
  tokenCount: number;
}

interface Piece {
  charStart: number;
  charEnd: number;
  page: number | null;
  headingPath: string[];
  heading: boolean;
  tokens: number;
}

const SENTENCE = /[^.!?\n]+(?:[.!?]+|\n|$)\s*/g;

/** A block longer than a chunk is cut at sentence ends (and, for a sentence longer still, at whitespace). */
function splitOverlong(text: string, start: number, base: Omit<Piece, 'charStart' | 'charEnd' | 'tokens'>, options: ChunkingOptions): Piece[] {
  const pieces: Piece[] = [];
  const maxChars = options.chunkTokens * 3;
  for (const match of text.matchAll(SENTENCE)) {
    const sentence = match[0];
    if (sentence.trim() === '') continue;
    let offset = match.index;
    let rest = sentence;
    while (rest.length > 0) {
      let cut = rest.length;
      if (rest.length > maxChars) {
        const space = rest.lastIndexOf(' ', maxChars);
        cut = space > maxChars / 2 ? space + 1 : maxChars;
      }
      const part = rest.slice(0, cut);
      const lead = part.length - part.trimStart().length;
      const trimmed = part.trim();
      if (trimmed !== '') {
        const charStart = start + offset + lead;
        pieces.push({ ...base, charStart, charEnd: charStart + trimmed.length, tokens: options.countTokens(trimmed) });
      }
      offset += cut;
      rest = rest.slice(cut);
    }
  }
  return pieces;
}

/**
 * Structure-aware chunking: blocks (headings, paragraphs, table rows) are packed into chunks of about
 * `chunkTokens`; a heading starts a new chunk; the last blocks of a chunk (up to `overlapTokens`) open the next one.
 * Offsets index the extraction's text, so `text.slice(char_start, char_end)` is the chunk.
 */
export function chunkExtraction(extraction: Extraction, options: ChunkingOptions): DocumentChunk[] {
  const pieces: Piece[] = [];
  for (const block of extraction.blocks) {
    const base = { page: block.page, headingPath: block.kind === 'heading' ? [...block.headingPath, block.text] : block.headingPath, heading: block.kind === 'heading' };
    const tokens = options.countTokens(block.text);
    if (tokens <= options.chunkTokens) pieces.push({ ...base, charStart: block.charStart, charEnd: block.charEnd, tokens });
    else pieces.push(...splitOverlong(block.text, block.charStart, base, options));
  }

  const chunks: DocumentChunk[] = [];
  let current: Piece[] = [];
  let currentTokens = 0;
  let fresh = 0;
  const emit = () => {
    if (fresh === 0) return;
    const first = current[0]!;
    const last = current[current.length - 1]!;
    const text = extraction.text.slice(first.charStart, last.charEnd);
    chunks.push({
      index: chunks.length,
      text,
      page: current.find((piece) => piece.page !== null)?.page ?? null,
      headingPath: current.find((piece) => !piece.heading || current.length === 1)?.headingPath ?? first.headingPath,
      charStart: first.charStart,
      charEnd: last.charEnd,
      tokenCount: options.countTokens(text),
    });
    // The overlap: trailing pieces (never a lone heading of the chunk just closed) carried into the next chunk.
    const carried: Piece[] = [];
    let carriedTokens = 0;
    for (let i = current.length - 1; i > 0 && options.overlapTokens > 0; i -= 1) {
      const piece = current[i]!;
      if (piece.heading || carriedTokens + piece.tokens > options.overlapTokens) break;
      carried.unshift(piece);
      carriedTokens += piece.tokens;
    }
    current = carried;
    currentTokens = carriedTokens;
    fresh = 0;
  };
  for (const piece of pieces) {
    const startsSection = piece.heading && fresh > 0;
    if (startsSection || (fresh > 0 && currentTokens + piece.tokens > options.chunkTokens)) {
      emit();
      if (piece.heading) {
        current = [];
        currentTokens = 0;
      }
    }
    // A carried overlap that would overflow with this piece is dropped rather than exceed the target.
    if (currentTokens + piece.tokens > options.chunkTokens) {
      current = [];
      currentTokens = 0;
    }
    current.push(piece);
    currentTokens += piece.tokens;
    fresh += 1;
  }
  emit();
  return chunks;
}

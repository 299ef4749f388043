import { parse as parseCsv } from 'csv-parse/sync';
import { Parser } from 'htmlparser2';
import { extractEml } from './documents.eml.js';
import { DocumentRejectedError, type DocumentMediaType } from './documents.formats.js';
import { extractDocx, extractPptxFile, extractXlsx, type ZipLimits } from './documents.office.js';
import { extractPdf } from './documents.pdf.js';

/** One structural unit of a document: chunking never splits inside one unless it alone is too long. */
export interface ExtractedBlock {
  kind: 'heading' | 'paragraph' | 'row';
  text: string;
  page: number | null;
  /** Headings above this block, outermost first. */
  headingPath: string[];
  /** Heading level (1 = top), for headings only. */
  level?: number;
}

export interface Extraction {
  /** The blocks joined by blank lines: character offsets of chunks point into this. */
  text: string;
  blocks: (ExtractedBlock & { charStart: number; charEnd: number })[];
  pageCount: number | null;
}

const BLOCK_SEPARATOR = '\n\n';

export function assemble(blocks: ExtractedBlock[], pageCount: number | null): Extraction {
  let text = '';
  const positioned: Extraction['blocks'] = [];
  for (const block of blocks) {
    const trimmed = block.text.trim();
    if (trimmed === '') continue;
    if (text !== '') text += BLOCK_SEPARATOR;
    const charStart = text.length;
    text += trimmed;
    positioned.push({ ...block, text: trimmed, charStart, charEnd: text.length });
  }
  return { text, blocks: positioned, pageCount };
}

/** Keeps the heading path as headings of each level come and go. */
function headingTracker() {
  const path: { level: number; text: string }[] = [];
  return {
    enter(level: number, text: string): string[] {
      while (path.length > 0 && path[path.length - 1]!.level >= level) path.pop();
      const above = path.map((heading) => heading.text);
      path.push({ level, text });
      return above;
    },
    current(): string[] {
      return path.map((heading) => heading.text);
    },
  };
}

function decodeText(bytes: Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes).replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

function paragraphs(text: string): string[] {
  return text.split(/\n\s*\n/);
}

function extractPlain(bytes: Uint8Array): Extraction {
  return assemble(
    paragraphs(decodeText(bytes)).map((text) => ({ kind: 'paragraph', text, page: null, headingPath: [] })),
    null,
  );
}

const ATX_HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;

/** Markdown: ATX headings give the heading path; fenced code stays one block. */
function extractMarkdown(bytes: Uint8Array): Extraction {
  const headings = headingTracker();
  const blocks: ExtractedBlock[] = [];
  let buffer: string[] = [];
  let inFence = false;
  const flush = () => {
    if (buffer.length > 0) blocks.push({ kind: 'paragraph', text: buffer.join('\n'), page: null, headingPath: headings.current() });
    buffer = [];
  };
  for (const line of decodeText(bytes).split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      inFence = !inFence;
      buffer.push(line);
      continue;
    }
    const heading = inFence ? null : ATX_HEADING.exec(line);
    if (heading) {
      flush();
      const level = heading[1]!.length;
      const text = heading[2]!;
      blocks.push({ kind: 'heading', text, page: null, headingPath: headings.enter(level, text), level });
    } else if (!inFence && line.trim() === '') {
      flush();
    } else {
      buffer.push(line);
    }
  }
  flush();
  return assemble(blocks, null);
}

/** Each row becomes `header: value` pairs, so every chunk of a table says what its numbers are. */
export function rowsToBlocks(rows: unknown[][], sheet: string | null): ExtractedBlock[] {
  const [header, ...body] = rows;
  if (!header) return [];
  const names = header.map((cell, index) => (String(cell ?? '').trim() || `column ${index + 1}`));
  const headingPath = sheet ? [sheet] : [];
  return body
    .map((row) =>
      row
        .map((cell, index) => {
          const value = String(cell ?? '').trim();
          return value === '' ? '' : `${names[index] ?? `column ${index + 1}`}: ${value}`;
        })
        .filter((pair) => pair !== '')
        .join('; '),
    )
    .filter((text) => text !== '')
    .map((text) => ({ kind: 'row' as const, text, page: null, headingPath }));
}

function extractCsv(bytes: Uint8Array): Extraction {
  let rows: unknown[][];
  try {
    rows = parseCsv(decodeText(bytes), { relax_column_count: true, skip_empty_lines: true, bom: true }) as unknown[][];
  } catch (error) {
    throw new DocumentRejectedError(422, `the CSV file is damaged: ${(error as Error).message.slice(0, 200)}`);
  }
  return assemble(rowsToBlocks(rows, null), null);
}

const SKIPPED_ELEMENTS = new Set(['script', 'style', 'noscript', 'template', 'head', 'svg', 'iframe', 'object', 'canvas']);
const BLOCK_ELEMENTS = new Set(['p', 'div', 'section', 'article', 'main', 'li', 'tr', 'td', 'th', 'br', 'pre', 'blockquote', 'table', 'ul', 'ol', 'dd', 'dt', 'header', 'footer', 'nav', 'aside', 'figcaption', 'form']);
const HEADING = /^h([1-6])$/;
const VOID_ELEMENTS = new Set(['br', 'hr', 'img', 'input', 'meta', 'link', 'area', 'base', 'col', 'embed', 'source', 'track', 'wbr']);

function isHidden(attributes: Record<string, string>): boolean {
  if ('hidden' in attributes || attributes['aria-hidden'] === 'true') return true;
  const style = (attributes.style ?? '').toLowerCase().replace(/\s+/g, '');
  return style.includes('display:none') || style.includes('visibility:hidden');
}

/**
 * HTML: visible text only (scripts, styles, templates and hidden elements are dropped). When the page has a
 * `<main>` or `<article>`, only that is kept (navigation and footers are not the document).
 */
export function extractHtml(bytes: Uint8Array): Extraction {
  interface Collected {
    blocks: ExtractedBlock[];
  }
  const everything: Collected = { blocks: [] };
  const main: Collected = { blocks: [] };
  const headings = headingTracker();
  const stack: { name: string; hidden: boolean; main: boolean }[] = [];
  let buffer = '';
  let headingLevel: number | null = null;
  let mainDepth = 0;
  let sawMain = false;
  const targets = () => (mainDepth > 0 ? [everything, main] : [everything]);
  const flush = () => {
    const text = buffer.replace(/\s+/g, ' ').trim();
    buffer = '';
    if (text === '') return;
    if (headingLevel !== null) {
      const block: ExtractedBlock = { kind: 'heading', text, page: null, headingPath: headings.enter(headingLevel, text), level: headingLevel };
      for (const target of targets()) target.blocks.push(block);
    } else {
      for (const target of targets()) target.blocks.push({ kind: 'paragraph', text, page: null, headingPath: headings.current() });
    }
  };
  const hiddenNow = () => stack.some((entry) => entry.hidden);
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        const hidden = SKIPPED_ELEMENTS.has(name) || isHidden(attributes);
        const heading = HEADING.exec(name);
        if (BLOCK_ELEMENTS.has(name) || heading) flush();
        if (VOID_ELEMENTS.has(name)) return;
        const isMain = name === 'main' || name === 'article';
        if (isMain && !hiddenNow()) {
          mainDepth += 1;
          sawMain = true;
        }
        if (heading) headingLevel = Number(heading[1]);
        stack.push({ name, hidden, main: isMain });
      },
      ontext(text) {
        if (!hiddenNow()) buffer += text;
      },
      onclosetag(name) {
        if (VOID_ELEMENTS.has(name)) return;
        const index = stack.map((entry) => entry.name).lastIndexOf(name);
        if (index < 0) return;
        if (BLOCK_ELEMENTS.has(name) || HEADING.test(name)) flush();
        const closed = stack.splice(index);
        if (HEADING.test(name)) headingLevel = null;
        for (const entry of closed) if (entry.main && mainDepth > 0) mainDepth -= 1;
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.write(decodeText(bytes));
  parser.end();
  flush();
  return assemble(sawMain && main.blocks.length > 0 ? main.blocks : everything.blocks, null);
}

/** Extracts the text and its structure; CPU-bound, so it runs in a worker thread (documents.worker.ts). */
export async function extractDocument(mediaType: DocumentMediaType, bytes: Uint8Array, limits: ZipLimits): Promise<Extraction> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (mediaType) {
    case 'application/pdf':
      return extractPdf(bytes);
    case 'application/vnd.openxmlformats-officedocument.wordprocessingml.document':
      return extractDocx(buffer, limits, extractHtml);
    case 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet':
      return extractXlsx(buffer, limits);
    case 'application/vnd.openxmlformats-officedocument.presentationml.presentation':
      return extractPptxFile(buffer, limits);
    case 'message/rfc822':
      return extractEml(buffer);
    case 'text/plain':
      return extractPlain(bytes);
    case 'text/markdown':
      return extractMarkdown(bytes);
    case 'text/csv':
      return extractCsv(bytes);
    case 'text/html':
      return extractHtml(bytes);
  }
}

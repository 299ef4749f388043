import { Parser } from 'htmlparser2';
import yauzl from 'yauzl';
import { assemble, rowsToBlocks, type ExtractedBlock, type Extraction } from './documents.extract.js';
import { DocumentRejectedError } from './documents.formats.js';

export interface ZipLimits {
  maxUnzippedBytes: number;
  maxEntries: number;
}

function openZip(bytes: Buffer): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false }, (error, zip) => (error || !zip ? reject(error ?? new Error('no zip')) : resolve(zip)));
  });
}

/**
 * Reads every entry of an Office file (a zip), refusing it as a bomb (422) past the entry count or the decompressed
 * size — counted on the bytes actually inflated, not only on what the headers claim.
 */
export async function readZipEntries(bytes: Buffer, limits: ZipLimits): Promise<Map<string, Buffer>> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(bytes);
  } catch {
    throw new DocumentRejectedError(422, 'the file is damaged (its zip structure cannot be read)');
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw new DocumentRejectedError(422, `the file has ${zip.entryCount} parts, more than the ${limits.maxEntries} allowed (a zip bomb?)`);
  }
  const entries = new Map<string, Buffer>();
  let total = 0;
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      zip.close();
      reject(error);
    };
    zip.on('error', () => fail(new DocumentRejectedError(422, 'the file is damaged (a part cannot be read)')));
    zip.on('end', () => resolve(entries));
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileName.endsWith('/')) return zip.readEntry();
      total += entry.uncompressedSize;
      if (total > limits.maxUnzippedBytes) return fail(new DocumentRejectedError(422, `the file expands to more than ${limits.maxUnzippedBytes} bytes (a zip bomb?)`));
      if (entry.isEncrypted()) return fail(new DocumentRejectedError(422, 'the file is encrypted'));
      zip.openReadStream(entry, (error, stream) => {
        if (error || !stream) return fail(new DocumentRejectedError(422, 'the file is damaged (a part cannot be inflated)'));
        const parts: Buffer[] = [];
        let size = 0;
        stream.on('data', (part: Buffer) => {
          size += part.length;
          if (size > entry.uncompressedSize || total - entry.uncompressedSize + size > limits.maxUnzippedBytes) {
            stream.destroy();
            fail(new DocumentRejectedError(422, `the file expands to more than ${limits.maxUnzippedBytes} bytes (a zip bomb?)`));
            return;
          }
          parts.push(part);
        });
        stream.on('error', () => fail(new DocumentRejectedError(422, 'the file is damaged (a part does not inflate to its declared size)')));
        stream.on('end', () => {
          entries.set(entry.fileName, Buffer.concat(parts));
          zip.readEntry();
        });
      });
    });
    zip.readEntry();
  });
}

/**
 * The cheap check made at upload, before anything is stored: the zip's directory (entry count, declared sizes)
 * within the limits. `readZipEntries` enforces the same limits on the bytes actually inflated, in the worker.
 */
export async function inspectZip(bytes: Buffer, limits: ZipLimits): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(bytes);
  } catch {
    throw new DocumentRejectedError(422, 'the file is damaged (its zip structure cannot be read)');
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw new DocumentRejectedError(422, `the file has ${zip.entryCount} parts, more than the ${limits.maxEntries} allowed (a zip bomb?)`);
  }
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    zip.on('error', () => reject(new DocumentRejectedError(422, 'the file is damaged (its zip directory cannot be read)')));
    zip.on('end', () => resolve());
    zip.on('entry', (entry: yauzl.Entry) => {
      total += entry.uncompressedSize;
      if (total > limits.maxUnzippedBytes) {
        zip.close();
        reject(new DocumentRejectedError(422, `the file expands to more than ${limits.maxUnzippedBytes} bytes (a zip bomb?)`));
        return;
      }
      if (entry.isEncrypted()) {
        zip.close();
        reject(new DocumentRejectedError(422, 'the file is encrypted'));
        return;
      }
      zip.readEntry();
    });
    zip.readEntry();
  });
}

/** Text runs (`a:t`) of one slide's XML, one paragraph (`a:p`) per block. */
function slideParagraphs(xml: string): string[] {
  const paragraphs: string[] = [];
  let current = '';
  let inText = false;
  const parser = new Parser(
    {
      onopentag(name) {
        if (name === 'a:t') inText = true;
      },
      ontext(text) {
        if (inText) current += text;
      },
      onclosetag(name) {
        if (name === 'a:t') inText = false;
        if (name === 'a:p') {
          if (current.trim() !== '') paragraphs.push(current.trim());
          current = '';
        }
      },
    },
    { xmlMode: true, decodeEntities: true },
  );
  parser.write(xml);
  parser.end();
  return paragraphs;
}

/** PPTX: each slide is a page; its first paragraph (the title, in the usual layouts) heads the slide. */
export function extractPptx(entries: Map<string, Buffer>): Extraction {
  const slides = [...entries.keys()]
    .map((name) => /^ppt\/slides\/slide(\d+)\.xml$/.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ name: match[0], number: Number(match[1]) }))
    .sort((a, b) => a.number - b.number);
  if (slides.length === 0) throw new DocumentRejectedError(422, 'the presentation has no slides');
  const blocks: ExtractedBlock[] = [];
  for (const slide of slides) {
    const [title, ...rest] = slideParagraphs(entries.get(slide.name)!.toString('utf8'));
    if (title === undefined) continue;
    blocks.push({ kind: 'heading', text: title, page: slide.number, headingPath: [], level: 1 });
    for (const text of rest) blocks.push({ kind: 'paragraph', text, page: slide.number, headingPath: [title] });
  }
  return assemble(blocks, slides.length);
}



/** DOCX: mammoth turns Word styles into HTML headings and paragraphs; the HTML extractor keeps that structure. */
export async function extractDocx(bytes: Buffer, limits: ZipLimits, html: (bytes: Uint8Array) => Extraction): Promise<Extraction> {
  await readZipEntries(bytes, limits);
  const mammoth = await import('mammoth');
  const { value } = await mammoth.convertToHtml({ buffer: bytes });
  return html(new TextEncoder().encode(value));
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') {
    const cell = value as { text?: unknown; result?: unknown; richText?: { text: string }[] };
    if (Array.isArray(cell.richText)) return cell.richText.map((run) => run.text).join('');
    if (cell.result !== undefined) return cellText(cell.result);
    if (typeof cell.text === 'string') return cell.text;
    return '';
  }
  return String(value);
}

/** XLSX: every sheet's rows with their header row's names (`header: value; ...`), the sheet as heading path. */
export async function extractXlsx(bytes: Buffer, limits: ZipLimits): Promise<Extraction> {
  await readZipEntries(bytes, limits);
  const { default: ExcelJS } = await import('exceljs');
  const workbook = new ExcelJS.Workbook();
  await workbook.xlsx.load(bytes as unknown as ArrayBuffer);
  const blocks: ExtractedBlock[] = [];
  for (const sheet of workbook.worksheets) {
    const rows: unknown[][] = [];
    sheet.eachRow({ includeEmpty: false }, (row) => {
      const values = Array.isArray(row.values) ? row.values.slice(1) : [];
      rows.push(values.map(cellText));
    });
    blocks.push(...rowsToBlocks(rows, sheet.name));
  }
  return assemble(blocks, null);
}

export async function extractPptxFile(bytes: Buffer, limits: ZipLimits): Promise<Extraction> {
  return extractPptx(await readZipEntries(bytes, limits));
}

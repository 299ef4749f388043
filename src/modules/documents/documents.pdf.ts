import { assemble, type ExtractedBlock, type Extraction } from './documents.extract.js';
import { DocumentRejectedError } from './documents.formats.js';

/** The trailer of an encrypted PDF names its security handler; its text layer is not ours to read. */
export function isEncryptedPdf(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes('/Encrypt');
}

/** PDF: the text layer, page by page (pdf.js); paragraphs are runs of lines, each keeps its page number. */
export async function extractPdf(bytes: Uint8Array): Promise<Extraction> {
  if (isEncryptedPdf(bytes)) throw new DocumentRejectedError(422, 'the PDF is encrypted; upload an unprotected copy');
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  let document;
  try {
    document = await pdfjs.getDocument({ data: new Uint8Array(bytes), isEvalSupported: false, disableFontFace: true, useSystemFonts: false, verbosity: 0 }).promise;
  } catch (error) {
    if ((error as { name?: string }).name === 'PasswordException') throw new DocumentRejectedError(422, 'the PDF is encrypted; upload an unprotected copy');
    throw new DocumentRejectedError(422, 'the PDF is damaged and cannot be read');
  }
  try {
    const blocks: ExtractedBlock[] = [];
    for (let number = 1; number <= document.numPages; number += 1) {
      const page = await document.getPage(number);
      const content = await page.getTextContent();
      let text = '';
      for (const item of content.items) {
        if (!('str' in item)) continue;
        text += item.str;
        if (item.hasEOL) text += '\n';
      }
      for (const paragraph of text.split(/\n\s*\n/)) {
        const flowed = paragraph.replace(/-\n(?=\p{Ll})/gu, '').replace(/\s*\n\s*/g, ' ');
        blocks.push({ kind: 'paragraph', text: flowed, page: number, headingPath: [] });
      }
      page.cleanup();
    }
    const extraction = assemble(blocks, document.numPages);
    if (extraction.text === '') throw new DocumentRejectedError(422, 'the PDF has no text layer (a scan?); text recognition is not supported');
    return extraction;
  } finally {
    await document.destroy();
  }
}

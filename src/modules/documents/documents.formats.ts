import { fileTypeFromBuffer } from 'file-type';

/** The formats CDSA extracts text from, by canonical media type. */
export const DOCUMENT_FORMATS = {
  'text/plain': { extensions: ['txt', 'text', 'log'], binary: false },
  'text/markdown': { extensions: ['md', 'markdown'], binary: false },
  'text/csv': { extensions: ['csv'], binary: false },
  'text/html': { extensions: ['html', 'htm'], binary: false },
  'message/rfc822': { extensions: ['eml'], binary: false },
  'application/pdf': { extensions: ['pdf'], binary: true },
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': { extensions: ['docx'], binary: true },
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': { extensions: ['xlsx'], binary: true },
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': { extensions: ['pptx'], binary: true },
} as const;
export type DocumentMediaType = keyof typeof DOCUMENT_FORMATS;

/** Why a file is refused, in words the uploader can act on; `status` is 415 (type) or 422 (content). */
export class DocumentRejectedError extends Error {
  constructor(
    readonly status: 415 | 422,
    message: string,
  ) {
    super(message);
    this.name = 'DocumentRejectedError';
  }
}

function extensionOf(filename: string): string {
  const dot = filename.lastIndexOf('.');
  return dot < 0 ? '' : filename.slice(dot + 1).toLowerCase();
}

function mediaTypeForExtension(extension: string): DocumentMediaType | undefined {
  for (const [type, format] of Object.entries(DOCUMENT_FORMATS) as [DocumentMediaType, { extensions: readonly string[] }][]) {
    if (format.extensions.includes(extension)) return type;
  }
  return undefined;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Text is valid UTF-8 without NUL bytes (binary formats nearly always have them). */
function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real type of an upload, from its bytes, which must agree with its name: a PDF renamed `.txt`, or text named
 * `.pdf`, is refused (415). Binary types are recognised by their signatures (file-type); text by being UTF-8.
 */
export async function sniffMediaType(bytes: Uint8Array, filename: string): Promise<DocumentMediaType> {
  const extension = extensionOf(filename);
  const claimed = mediaTypeForExtension(extension);
  // Text that happens to start like a binary signature ("BM..." is a BMP's, "ID3" an MP3's) is still text: a real
  // binary file of those types holds NUL bytes or invalid UTF-8, and is judged by its signature below.
  if (claimed && !DOCUMENT_FORMATS[claimed].binary && looksLikeText(bytes)) return claimed;
  const detected = await fileTypeFromBuffer(bytes);
  if (detected) {
    if (claimed && detected.mime === claimed) return claimed;
    if (!claimed || !(detected.mime in DOCUMENT_FORMATS)) throw new DocumentRejectedError(415, `files of type ${detected.mime} are not supported`);
    throw new DocumentRejectedError(415, `the file's content (${detected.mime}) does not match its name (.${extension})`);
  }
  if (claimed && DOCUMENT_FORMATS[claimed].binary) {
    throw new DocumentRejectedError(415, `the file's content is not a ${extension.toUpperCase()} file, as its name (.${extension}) says`);
  }
  if (!looksLikeText(bytes)) {
    throw new DocumentRejectedError(415, claimed ? `the file's content is not text, as its name (.${extension}) says` : 'the file type is not supported');
  }
  if (!claimed) {
    throw new DocumentRejectedError(415, extension ? `files named .${extension} are not supported` : 'the file name needs an extension that names a supported type');
  }
  return claimed;
}

/** Checks made at upload for formats that can be refused cheaply (422): zip bombs by their directory, encrypted PDFs. */
export async function preflight(mediaType: DocumentMediaType, bytes: Buffer, limits: { maxUnzippedBytes: number; maxEntries: number }): Promise<void> {
  if (mediaType === 'application/pdf') {
    const { isEncryptedPdf } = await import('./documents.pdf.js');
    if (isEncryptedPdf(bytes)) throw new DocumentRejectedError(422, 'the PDF is encrypted; upload an unprotected copy');
  } else if (mediaType.startsWith('application/vnd.openxmlformats-officedocument.')) {
    const { inspectZip } = await import('./documents.office.js');
    await inspectZip(bytes, limits);
  }
}

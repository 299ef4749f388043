import { fileTypeFromBuffer } from 'file-type';

/** The formats CDSA extracts text from, by canonical media type. */
export const DOCUMENT_FORMATS = {
  'text/plain': { extensions: ['txt', 'text', 'log'] },
  'text/markdown': { extensions: ['md', 'markdown'] },
  'text/csv': { extensions: ['csv'] },
  'text/html': { extensions: ['html', 'htm'] },
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
  const detected = await fileTypeFromBuffer(bytes);
  if (detected) {
    if (!claimed) throw new DocumentRejectedError(415, `files of type ${detected.mime} are not supported`);
    throw new DocumentRejectedError(415, `the file's content (${detected.mime}) does not match its name (.${extension})`);
  }
  if (!looksLikeText(bytes)) {
    throw new DocumentRejectedError(415, claimed ? `the file's content is not text, as its name (.${extension}) says` : 'the file type is not supported');
  }
  if (!claimed) {
    throw new DocumentRejectedError(415, extension ? `files named .${extension} are not supported` : 'the file name needs an extension that names a supported type');
  }
  return claimed;
}

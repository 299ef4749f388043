import { parentPort } from 'node:worker_threads';
import { countTokens, loadTokenizer } from '../chat/chat.tokens.js';
import { chunkExtraction } from './documents.chunking.js';
import { classifyText } from './documents.classify.js';
import { extractDocument } from './documents.extract.js';
import { DocumentRejectedError } from './documents.formats.js';
import type { ParseRequest, ParseResponse } from './documents.worker-pool.js';

/** Runs in a worker thread: parsing and chunking are CPU-bound and must not stall the API's event loop. */
parentPort?.on('message', (request: ParseRequest) => {
  void (async (): Promise<ParseResponse> => {
    try {
      await loadTokenizer();
      const extraction = await extractDocument(request.mediaType, request.bytes, request.zipLimits);
      const chunks = chunkExtraction(extraction, { chunkTokens: request.chunkTokens, overlapTokens: request.overlapTokens, countTokens });
      return { id: request.id, ok: true, text: extraction.text, pageCount: extraction.pageCount, chunks, classification: classifyText(extraction.text) };
    } catch (error) {
      if (error instanceof DocumentRejectedError) return { id: request.id, ok: false, status: error.status, message: error.message };
      return { id: request.id, ok: false, status: 422, message: 'the file could not be read (it may be damaged)', internal: error instanceof Error ? error.message : String(error) };
    }
  })().then((response) => parentPort?.postMessage(response));
});

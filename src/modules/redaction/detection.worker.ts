import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { detectPii } from './detectors.js';
import { loadRedactionData } from './redactor.js';
import type { DetectionRequest, DetectionResponse } from './detection-offload.js';

/**
 * Runs in a worker thread: PII detection over long texts (a pasted contract, a long tool result) is CPU-bound and
 * would otherwise hold the event loop that streams every other user's tokens. Same detectors, same budget.
 */
// The word lists, and the detectors warmed up, as on the main thread.
loadRedactionData();
parentPort?.postMessage({ ready: true });
parentPort?.on('message', (request: DetectionRequest) => {
  let response: DetectionResponse;
  const started = performance.now();
  try {
    const entities = detectPii(request.text, started + request.budgetMs);
    response = performance.now() - started > request.budgetMs ? { id: request.id, ok: false, reason: 'timeout' } : { id: request.id, ok: true, entities };
  } catch {
    response = { id: request.id, ok: false, reason: 'error' };
  }
  parentPort?.postMessage(response);
});

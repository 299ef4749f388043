import type { JobQueue } from '../../lib/infra/jobs.js';
import { DOCUMENT_EMBED_JOB, DOCUMENT_PROCESS_JOB, type DocumentsService } from './documents.service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Thin handler: the pipeline is idempotent per (document, generation), so a retried or duplicated job is harmless. */
export function registerDocumentJobs(jobs: Pick<JobQueue, 'register'>, documents: Pick<DocumentsService, 'processDocument' | 'embedAgain'>): void {
  jobs.register<unknown>(DOCUMENT_PROCESS_JOB, async (data) => {
    const { documentId, generation } = (data ?? {}) as { documentId?: unknown; generation?: unknown };
    if (typeof documentId !== 'string' || !UUID.test(documentId) || typeof generation !== 'number') return;
    await documents.processDocument(documentId, generation);
  });
  jobs.register<unknown>(DOCUMENT_EMBED_JOB, async (data) => {
    const { documentId, generation } = (data ?? {}) as { documentId?: unknown; generation?: unknown };
    if (typeof documentId !== 'string' || !UUID.test(documentId) || typeof generation !== 'number') return;
    await documents.embedAgain(documentId, generation);
  });
}

import type { DocumentsService } from '../documents/documents.service.js';
import type { KnowledgeSource } from './knowledge.js';

/**
 * The documents module as chat's knowledge source. Reads go through the documents service's own use cases, so the
 * access policy and the DOCUMENT_ACCESSED audit are the documents module's, never re-implemented here.
 */
export function documentsKnowledge(documents: () => Pick<DocumentsService, 'get' | 'chunks'>): KnowledgeSource {
  return {
    async documentPassages(actor, documentId, options, context) {
      // Content first: 404 for a document the caller may not read, before its metadata is looked at.
      const page = await documents().chunks(actor, documentId, { limit: options.limit }, context);
      const document = await documents().get(actor, documentId);
      return page.items.map((chunk) => ({
        document_id: documentId,
        chunk_id: chunk.id,
        title: document.title,
        page: chunk.page,
        label: document.label,
        heading_path: chunk.heading_path,
        text: chunk.text,
      }));
    },
  };
}

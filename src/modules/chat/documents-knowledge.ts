import type { DocumentSearch } from '../documents/index.js';
import type { KnowledgeSource } from './knowledge.js';

/**
 * The documents module as chat's knowledge source. Reads go through the documents module's own use cases, so the
 * access policy and the audit (`DOCUMENT_ACCESSED` `retrieved` for passages put in a prompt, `cited` for those an
 * answer cites) are the documents module's, never re-implemented here.
 */
export function documentsKnowledge(documents: () => Pick<DocumentSearch, 'documentPassages' | 'recordCitations'>): KnowledgeSource {
  return {
    async documentPassages(actor, documentId, options, context) {
      // 404 for a document the caller may not read, exactly as for one that does not exist.
      const passages = await documents().documentPassages(actor, documentId, { limit: options.limit }, context);
      return passages.map((passage) => ({
        document_id: passage.document_id,
        chunk_id: passage.chunk_id,
        title: passage.document_title,
        page: passage.page,
        label: passage.label,
        heading_path: passage.heading_path,
        text: passage.text,
      }));
    },
    async recordCitations(actor, passages, context) {
      await documents().recordCitations(actor, passages, context);
    },
  };
}

import type { Label } from '../../lib/labels.js';
import { SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import { ToolRunError, type BuiltinTool } from '../tools/builtins/index.js';
import { SEARCH_DOCUMENTS_TOOL } from '../chat/knowledge.js';

/** A hit as the documents search returns it (CONTRACT §7), the fields the tool passes on. */
export interface DocumentSearchHit {
  chunk_id: string;
  document_id: string;
  document_title: string;
  label: Label;
  page: number | null;
  heading_path: string[];
  text: string;
  score: number;
}

export interface SearchDocumentsDeps {
  /** The documents search, with authorization inside the query (the caller's clearance, shares, visibility). */
  search(actor: Actor, input: { query: string; top_k: number }, context: RequestContext): Promise<{ items: DocumentSearchHit[]; mode_used: string }>;
  /** The user's current role and clearance (undefined: no longer active). */
  accessOf(userId: string): Promise<{ role: Role; clearance: Label } | undefined>;
}

export const SEARCH_DOCUMENTS_DEFAULT_TOP_K = 6;
export const SEARCH_DOCUMENTS_MAX_TOP_K = 12;

/**
 * `search_documents`: the model's way into the user's documents. It runs as the user the call is for, with the
 * clearance they hold now (read at every call, never taken from the model's arguments), so it finds exactly what that
 * user could find with `POST /documents/search`. It changes nothing, so it needs no approval.
 */
export function createSearchDocumentsTool(deps: SearchDocumentsDeps): BuiltinTool {
  return {
    name: SEARCH_DOCUMENTS_TOOL,
    description:
      "Searches the user's documents (only those the user may read) and returns the most relevant passages, each with its document title, page and classification label.",
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['query'],
      properties: {
        query: { type: 'string', minLength: 1, maxLength: 1000, description: 'what to look for, in a few words' },
        top_k: { type: 'integer', minimum: 1, maximum: SEARCH_DOCUMENTS_MAX_TOP_K, description: `passages to return (default ${SEARCH_DOCUMENTS_DEFAULT_TOP_K})` },
      },
    },
    outputSchema: null,
    requiresApproval: false,
    options: [],
    seed: true,
    pure: true,
    // A cached result could outlive a deletion, an unshare or a higher label.
    uncacheable: true,
    async run(args, context) {
      const access = await deps.accessOf(context.userId);
      if (!access) throw new ToolRunError('user_inactive', 'The user this search runs for is no longer active');
      const actor: Actor = { userId: context.userId, username: '', role: access.role, clearance: access.clearance, sessionId: '' };
      const query = typeof args.query === 'string' ? args.query : '';
      const topK = typeof args.top_k === 'number' ? args.top_k : SEARCH_DOCUMENTS_DEFAULT_TOP_K;
      const found = await deps.search(actor, { query, top_k: topK }, SYSTEM_CONTEXT);
      return {
        mode_used: found.mode_used,
        results: found.items.map((hit) => ({
          chunk_id: hit.chunk_id,
          document_id: hit.document_id,
          document_title: hit.document_title,
          label: hit.label,
          page: hit.page,
          heading_path: hit.heading_path,
          text: hit.text,
        })),
      };
    },
  };
}

import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { sha256Hex } from '../../lib/crypto/hmac.js';
import { NotFoundError } from '../../lib/errors.js';
import type { Label } from '../../lib/labels.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import type { FieldEncryptionService } from '../vault/field-cipher.js';
import { contentReadableSql } from './documents.policy.js';
import { matchingWords, queryLexemes, rankKeyword, type RankedChunk, type SearchFilters } from './documents.search-sql.js';
import { chunkContentAad } from './documents.service.js';

export type SearchMode = 'hybrid' | 'keyword' | 'vector';
export const DEFAULT_TOP_K = 8;
export const MAX_TOP_K = 50;
/** Reciprocal rank fusion's constant (Cormack et al.): a hit's fused score is Σ 1/(k + rank). */
export const RRF_K = 60;
/** How many candidates each method contributes to a hybrid fusion, at least. */
const HYBRID_CANDIDATES = 50;
/** Words of the result passages looked up for highlights, at most (50 passages of ~400 tokens stay well below). */
const MAX_HIGHLIGHT_WORDS = 20_000;
const WORD = /[\p{L}\p{N}]+/gu;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface SearchInput {
  query: string;
  mode?: SearchMode;
  top_k?: number;
  filters?: SearchFilters;
}

export interface Highlight {
  start: number;
  end: number;
}

export interface SearchHit {
  chunk_id: string;
  document_id: string;
  document_title: string;
  label: Label;
  page: number | null;
  heading_path: string[];
  text: string;
  highlights: Highlight[];
  score: number;
  scores: { keyword?: number; vector?: number };
}

export interface SearchResult {
  items: SearchHit[];
  mode_used: 'keyword' | 'vector' | 'hybrid';
  /** Why the mode asked for was not used (vector search unavailable), else null. */
  mode_reason: string | null;
  took_ms: number;
}

/** A passage read for a model's context (pinned documents, retrieval by id): what a citation needs. */
export interface ContextPassage {
  chunk_id: string;
  document_id: string;
  document_title: string;
  label: Label;
  index: number;
  page: number | null;
  heading_path: string[];
  text: string;
}

/** The vector side of search, present once an embedding model and pgvector are there (documents.vectors.ts). */
export interface VectorRanker {
  /** Null when vector search can be used, else why not (shown as `mode_reason` and on documents). */
  unavailableReason(): string | null;
  rank(queryText: string, visible: SQL, filters: SearchFilters | undefined, limit: number): Promise<RankedChunk[]>;
}

export interface DocumentSearchDeps {
  db: Db;
  audit: Pick<AuditRecorder, 'record'>;
  fieldCipher: Pick<FieldEncryptionService, 'decrypt'>;
  /** AUDIT_LOG_PROMPTS: the query's text goes into DOCUMENT_SEARCHED only when the operator asked for it. */
  logQueries: boolean;
  vectors?: () => VectorRanker | undefined;
  logger?: { warn(obj: object, msg: string): void };
}

interface PassageRow {
  chunk_id: string;
  document_id: string;
  title: string;
  label: Label;
  index: number;
  page: number | null;
  encrypted_content: string;
  [key: string]: unknown;
}

/** Highlights: where the words that match a query lexeme are, as UTF-16 offsets into the passage's text. */
function highlightsOf(text: string, matching: Set<string>): Highlight[] {
  const out: Highlight[] = [];
  for (const match of text.matchAll(WORD)) {
    if (matching.has(match[0].toLowerCase())) out.push({ start: match.index, end: match.index + match[0].length });
  }
  return out;
}

/** Reciprocal rank fusion of ranked lists; ties keep the keyword list's order. */
export function fuseRrf(lists: readonly RankedChunk[][], k = RRF_K): { chunkId: string; documentId: string; score: number }[] {
  const fused = new Map<string, { chunkId: string; documentId: string; score: number; first: number }>();
  lists.forEach((list, listIndex) => {
    list.forEach((hit, rank) => {
      const entry = fused.get(hit.chunkId) ?? { chunkId: hit.chunkId, documentId: hit.documentId, score: 0, first: listIndex * 1e6 + rank };
      entry.score += 1 / (k + rank + 1);
      fused.set(hit.chunkId, entry);
    });
  });
  return [...fused.values()].sort((a, b) => b.score - a.score || a.first - b.first);
}

/**
 * Search and retrieval over passages, with the documents policy inside every query (CONTRACT §7): keyword (BM25),
 * vector (pgvector, when there) and hybrid (RRF). Texts and highlights are made from passages decrypted after the
 * policy let them through; nothing is cached, so a deletion, an unshare or a higher label counts from the next query
 * on every instance.
 */
export function createDocumentSearch(deps: DocumentSearchDeps) {
  const { db, audit, fieldCipher } = deps;

  async function loadPassages(actor: Actor, chunkIds: readonly string[]): Promise<Map<string, PassageRow>> {
    if (chunkIds.length === 0) return new Map();
    // The policy again: a document deleted or relabelled between ranking and loading drops out rather than leaks.
    const rows = await queryRows<PassageRow>(
      db,
      sql`select c.id as chunk_id, c.document_id, documents.title, documents.label, c.index, c.page, c.encrypted_content
            from document_chunks c join documents on documents.id = c.document_id
           where c.id::text in (select jsonb_array_elements_text(${JSON.stringify(chunkIds)}::jsonb)) and (${contentReadableSql(actor)})`,
    );
    return new Map(rows.map((row) => [row.chunk_id, row]));
  }

  function open(row: PassageRow): { text: string; heading_path: string[] } {
    return JSON.parse(fieldCipher.decrypt(row.encrypted_content, chunkContentAad(row.chunk_id))) as { text: string; heading_path: string[] };
  }

  function toPassage(row: PassageRow): ContextPassage {
    const opened = open(row);
    return { chunk_id: row.chunk_id, document_id: row.document_id, document_title: row.title, label: row.label, index: row.index, page: row.page, heading_path: opened.heading_path, text: opened.text };
  }

  async function recordRetrieval(actor: Actor, passages: ContextPassage[], access: 'retrieved' | 'cited', context: RequestContext): Promise<void> {
    const documentIds = [...new Set(passages.map((passage) => passage.document_id))];
    if (documentIds.length === 0) return;
    const event: AuditEventInput = {
      eventType: 'DOCUMENT_ACCESSED',
      userId: actor.userId,
      sessionId: actor.sessionId || null,
      resourceType: 'document',
      resourceId: documentIds.length === 1 ? documentIds[0]! : null,
      details: { access, document_ids: documentIds, chunk_ids: passages.map((passage) => passage.chunk_id) },
      context,
    };
    await withTransaction(db, async (uow) => {
      await audit.record(uow.tx, event);
    }, deps.logger);
  }

  return {
    /** `POST /documents/search`, and the `search_documents` tool of chat and MCP: always with the caller's own rights. */
    async search(actor: Actor, input: SearchInput, context: RequestContext): Promise<SearchResult> {
      const started = performance.now();
      const topK = Math.min(Math.max(1, input.top_k ?? DEFAULT_TOP_K), MAX_TOP_K);
      const vectors = deps.vectors?.();
      const vectorReason = vectors ? vectors.unavailableReason() : 'vector search is not configured';
      const requested: SearchMode = input.mode ?? (vectorReason === null ? 'hybrid' : 'keyword');
      let modeUsed: SearchResult['mode_used'] = requested === 'keyword' || vectorReason !== null ? 'keyword' : requested;
      let modeReason = requested !== 'keyword' && vectorReason !== null ? `${requested} search unavailable, keyword search used: ${vectorReason}` : null;
      const visible = contentReadableSql(actor);

      const lexemes = await queryLexemes(db, input.query);
      const candidates = modeUsed === 'hybrid' ? Math.max(HYBRID_CANDIDATES, topK * 2) : topK;
      let vector: RankedChunk[] = [];
      if (modeUsed !== 'keyword') {
        try {
          vector = await vectors!.rank(input.query, visible, input.filters, candidates);
        } catch (error) {
          // The embedding model down, the vector table being rebuilt: the answer is a keyword one, and says why.
          const message = error instanceof Error ? error.message : String(error);
          deps.logger?.warn({ err: message }, 'vector search failed; answered by keyword search');
          modeReason = `${modeUsed} search failed, keyword search used: ${message}`.slice(0, 500);
          modeUsed = 'keyword';
        }
      }
      const keyword = modeUsed === 'vector' ? [] : await rankKeyword(db, lexemes, visible, input.filters, candidates);
      const keywordScores = new Map(keyword.map((hit) => [hit.chunkId, hit.score]));
      const vectorScores = new Map(vector.map((hit) => [hit.chunkId, hit.score]));
      const ranked: { chunkId: string; documentId: string; score: number }[] =
        modeUsed === 'keyword' ? keyword : modeUsed === 'vector' ? vector : fuseRrf([keyword, vector]).slice(0, topK);

      const rows = await loadPassages(actor, ranked.map((hit) => hit.chunkId));
      const opened = ranked.flatMap((hit) => {
        const row = rows.get(hit.chunkId);
        return row ? [{ hit, row, content: open(row) }] : [];
      });
      const words = [...new Set(opened.flatMap(({ content }) => [...content.text.matchAll(WORD)].map((match) => match[0].toLowerCase())))].slice(0, MAX_HIGHLIGHT_WORDS);
      const matching = await matchingWords(db, words, lexemes);
      const items: SearchHit[] = opened.map(({ hit, row, content }) => ({
        chunk_id: row.chunk_id,
        document_id: row.document_id,
        document_title: row.title,
        label: row.label,
        page: row.page,
        heading_path: content.heading_path,
        text: content.text,
        highlights: highlightsOf(content.text, matching),
        score: hit.score,
        scores: {
          ...(keywordScores.has(hit.chunkId) ? { keyword: keywordScores.get(hit.chunkId)! } : {}),
          ...(vectorScores.has(hit.chunkId) ? { vector: vectorScores.get(hit.chunkId)! } : {}),
        },
      }));

      const query = deps.logQueries ? { query: input.query } : { query_sha256: sha256Hex(input.query), query_length: input.query.length };
      await withTransaction(db, async (uow) => {
        await audit.record(uow.tx, {
          eventType: 'DOCUMENT_SEARCHED',
          userId: actor.userId,
          sessionId: actor.sessionId || null,
          resourceType: 'document',
          resourceId: null,
          details: {
            mode: requested,
            mode_used: modeUsed,
            top_k: topK,
            ...query,
            filtered: input.filters !== undefined && Object.keys(input.filters).length > 0,
            result_count: items.length,
            document_ids: [...new Set(items.map((item) => item.document_id))],
            chunk_ids: items.map((item) => item.chunk_id),
          },
          context,
        });
      }, deps.logger);
      return { items, mode_used: modeUsed, mode_reason: modeReason, took_ms: Math.round((performance.now() - started) * 10) / 10 };
    },

    /**
     * Passages by id for a model's context (citations, retrieval): every one must be readable by the actor, else the
     * whole call is "not found" (no hint which one). Audited as DOCUMENT_ACCESSED `retrieved`.
     */
    async passagesByIds(actor: Actor, chunkIds: readonly string[], context: RequestContext): Promise<ContextPassage[]> {
      const unique = [...new Set(chunkIds.map((id) => id.toLowerCase()))];
      const rows = await loadPassages(actor, unique);
      if (rows.size !== unique.length) throw new NotFoundError('Document passage');
      const passages = unique.map((id) => toPassage(rows.get(id)!));
      await recordRetrieval(actor, passages, 'retrieved', context);
      return passages;
    },

    /**
     * A pinned document's passages in reading order (at most `limit`), for chat's `document_ids`: 404 when the actor
     * may not read it, exactly as for a missing id. Audited as DOCUMENT_ACCESSED `retrieved`.
     */
    async documentPassages(actor: Actor, documentId: string, options: { limit: number }, context: RequestContext): Promise<ContextPassage[]> {
      if (!UUID.test(documentId)) throw new NotFoundError('Document');
      const rows = await queryRows<PassageRow>(
        db,
        sql`select c.id as chunk_id, c.document_id, documents.title, documents.label, c.index, c.page, c.encrypted_content
              from documents join document_chunks c on c.document_id = documents.id
             where documents.id = ${documentId}::uuid and (${contentReadableSql(actor)})
             order by c.index limit ${Math.max(1, options.limit)}`,
      );
      if (rows.length === 0) {
        // Readable but not chunked yet (or empty) is an empty list; anything else is "not found".
        const [readable] = await queryRows<{ ok: boolean }>(db, sql`select exists (select 1 from documents where documents.id = ${documentId}::uuid and (${contentReadableSql(actor)})) as ok`);
        if (!readable?.ok) throw new NotFoundError('Document');
        return [];
      }
      const passages = rows.map(toPassage);
      await recordRetrieval(actor, passages, 'retrieved', context);
      return passages;
    },

    /** Chat records that an answer cited these passages (DOCUMENT_ACCESSED `cited`); the access log shows it. */
    async recordCitations(actor: Actor, passages: readonly Pick<ContextPassage, 'chunk_id' | 'document_id'>[], context: RequestContext): Promise<void> {
      await recordRetrieval(actor, passages as ContextPassage[], 'cited', context);
    },
  };
}

export type DocumentSearch = ReturnType<typeof createDocumentSearch>;

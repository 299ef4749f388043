import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db, type DbOrTx } from '../../db/client.js';
import { labelRank, type Label } from '../../lib/labels.js';
import type { EmbeddingClient } from '../llm/embeddings.js';
import { labelMayReachProvider } from '../llm/sensitivity-routing.js';
import { filterSql, type RankedChunk, type SearchFilters } from './documents.search-sql.js';
import type { VectorRanker } from './documents.search.js';

/**
 * Vector search over passages with pgvector, created at run time only where the extension exists (the embedded
 * database always has it; a PostgreSQL server may not), never in the migration chain:
 *
 *   document_vector_settings  (one row) the embedding model the stored vectors come from, and their dimension
 *   document_chunk_vectors    one vector per passage, cascading with its passage and document; HNSW, cosine
 *
 * The table is made when the first vectors arrive (their dimension is the model's). A different EMBEDDING_MODEL at
 * start-up drops the vectors and re-embeds every document in the background; until a document is done it is found by
 * keyword only. Filtered searches use pgvector's iterative index scans, so a filter that hides most passages still
 * finds the true nearest readable neighbours instead of an empty or short list.
 */

const LOCK_KEY = 424_242_017;
/** Candidates the HNSW scan keeps (pgvector's ef_search), at least; more for larger limits. */
const EF_SEARCH = 100;
/** Tuples an iterative scan may visit before it gives up (pgvector's hnsw.max_scan_tuples). */
const MAX_SCAN_TUPLES = 50_000;
/**
 * Up to this many readable vectors, search scans them exactly instead of using the HNSW index. A restrictive filter
 * (a reader who may see a tenth of the passages, a filter on a few documents) is where an approximate scan loses the
 * true neighbours, and it is also where an exact scan is cheap: it reads the readable passages' vectors through the
 * document index and sorts a few thousand distances (measured in bench/search.bench.ts).
 */
export const EXACT_SCAN_MAX_VECTORS = 20_000;

export type VectorState =
  | { ready: true; model: string }
  | { ready: false; reason: string };

export interface VectorIndexDeps {
  db: Db;
  /** The database has pgvector (`app.infra.vectorSearch`). */
  pgvector: boolean;
  /** EMBEDDING_MODEL's client; undefined when none is configured. */
  client: EmbeddingClient | undefined;
  /** Why there is no client (not configured, or its provider is not), for `vector_reason`. */
  noClientReason: string;
  cloudMaxLabel: Label;
  /** Redacts a text before it goes to a cloud embedding model (REDACT_CLOUD_PROMPTS); throws rather than pass it unredacted. */
  redactForCloud: ((text: string) => Promise<string>) | undefined;
}

export interface EmbedOutcome {
  vectorIndexed: boolean;
  vectorReason: string | null;
  /** The model the outcome is for (null: try again later). */
  vectorModel: string | null;
}

/** The embedding model (or the redactor before it) failed for a document: it stays in keyword search for now. */
export class EmbeddingFailedError extends Error {}

export function vectorLiteral(values: readonly number[]): string {
  return `[${values.map((value) => (Number.isFinite(value) ? value : 0)).join(',')}]`;
}

/** The vector table and its indexes for vectors of `size` dimensions, if not there yet (one instance at a time). */
export async function createVectorTable(db: Db, size: number): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.execute(sql.raw(`create table if not exists document_chunk_vectors (
      chunk_id uuid primary key references document_chunks(id) on delete cascade,
      document_id uuid not null references documents(id) on delete cascade,
      embedding vector(${Math.trunc(size)}) not null)`));
    await tx.execute(sql`create index if not exists document_chunk_vectors_document_idx on document_chunk_vectors (document_id)`);
    await tx.execute(sql`create index if not exists document_chunk_vectors_hnsw_idx on document_chunk_vectors using hnsw (embedding vector_cosine_ops)`);
    await tx.execute(sql`update document_vector_settings set dimensions = ${size} where id = 1`);
  });
}

export function createVectorIndex(deps: VectorIndexDeps) {
  const { db, client } = deps;

  function state(): VectorState {
    if (!deps.pgvector) return { ready: false, reason: 'the database has no pgvector extension (vector search unavailable)' };
    if (!client) return { ready: false, reason: deps.noClientReason };
    return { ready: true, model: client.modelId };
  }

  async function tableExists(tx: DbOrTx): Promise<boolean> {
    const [row] = await queryRows<{ ok: boolean }>(tx, sql`select to_regclass('document_chunk_vectors') is not null as ok`);
    return Boolean(row?.ok);
  }

  /**
   * Creates the vector table for this dimension if it is not there (one instance at a time). Checked each time rather
   * than remembered: another instance may have dropped and remade it for a new model.
   */
  async function ensureTable(size: number): Promise<void> {
    const [present] = await queryRows<{ dimensions: number | null }>(db, sql`select dimensions from document_vector_settings where id = 1 and to_regclass('document_chunk_vectors') is not null`);
    if (present?.dimensions === size) return;
    await createVectorTable(db, size);
  }

  return {
    state,

    /**
     * At start-up: the settings row, and when EMBEDDING_MODEL changed, the old vectors dropped and every document
     * marked for re-embedding (`vector_model` no longer matches).
     */
    async prepare(): Promise<void> {
      const current = state();
      if (!current.ready) return;
      await db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_KEY})`);
        await tx.execute(sql`create table if not exists document_vector_settings (id integer primary key check (id = 1), model text not null, dimensions integer)`);
        const [settings] = await queryRows<{ model: string; dimensions: number | null }>(tx, sql`select model, dimensions from document_vector_settings where id = 1`);
        if (settings?.model === current.model) return;
        await tx.execute(sql`drop table if exists document_chunk_vectors`);
        await tx.execute(sql`insert into document_vector_settings (id, model, dimensions) values (1, ${current.model}, null)
                             on conflict (id) do update set model = excluded.model, dimensions = null`);
        await tx.execute(sql`update documents set vector_indexed = false, vector_model = null,
                               vector_reason = ${`waiting to be embedded with ${current.model}: keyword search only until then`}
                             where vector_model is distinct from ${current.model}`);
      });
    },

    /** Why a document of this label is kept out of vector search with the current model, else null. */
    exclusion(label: Label): string | null {
      const current = state();
      if (!current.ready) return `${current.reason}: keyword search only`;
      if (!labelMayReachProvider(label, { isLocal: client!.isLocal }, deps.cloudMaxLabel)) {
        const bound = labelRank(deps.cloudMaxLabel) > labelRank('CONFIDENTIAL') ? 'CONFIDENTIAL' : deps.cloudMaxLabel;
        return `${label} content is above CLOUD_MAX_LABEL=${bound} and ${client!.modelId} is a cloud embedding model: keyword search only`;
      }
      return null;
    },

    /**
     * Embeds a document's passages and stores their vectors, replacing earlier ones, when its label allows the model.
     * Texts for a cloud model are redacted first. Throws when the model fails (the caller keeps the document in
     * keyword search and tries again later); never stores a partial or zero vector.
     */
    async embedDocument(documentId: string, label: Label, passages: readonly { id: string; text: string }[], write: (outcome: EmbedOutcome, store: (tx: DbOrTx) => Promise<void>) => Promise<void>): Promise<EmbedOutcome> {
      const excluded = this.exclusion(label);
      const current = state();
      if (excluded !== null || !current.ready) {
        const outcome = { vectorIndexed: false, vectorReason: excluded, vectorModel: current.ready ? current.model : null };
        await write(outcome, async (tx) => {
          if (await tableExists(tx)) await tx.execute(sql`delete from document_chunk_vectors where document_id = ${documentId}::uuid`);
        });
        return outcome;
      }
      let vectors: number[][];
      try {
        const texts = client!.isLocal || !deps.redactForCloud ? passages.map((passage) => passage.text) : await Promise.all(passages.map((passage) => deps.redactForCloud!(passage.text)));
        vectors = passages.length === 0 ? [] : await client!.embed(texts);
      } catch (error) {
        // The redactor or the model failed: nothing was stored, and nothing unredacted was sent.
        throw new EmbeddingFailedError(error instanceof Error ? error.message : String(error), { cause: error });
      }
      if (vectors.length > 0) await ensureTable(vectors[0]!.length);
      const outcome = { vectorIndexed: true, vectorReason: null, vectorModel: current.model };
      await write(outcome, async (tx) => {
        if (!(await tableExists(tx))) {
          if (passages.length === 0) return;
          throw new Error('the vector table disappeared (the embedding model changed); the document will be embedded again');
        }
        await tx.execute(sql`delete from document_chunk_vectors where document_id = ${documentId}::uuid`);
        const BATCH = 100;
        for (let start = 0; start < passages.length; start += BATCH) {
          const rows = passages.slice(start, start + BATCH).map((passage, i) => sql`(${passage.id}::uuid, ${documentId}::uuid, ${vectorLiteral(vectors[start + i]!)}::vector)`);
          await tx.execute(sql`insert into document_chunk_vectors (chunk_id, document_id, embedding) values ${sql.join(rows, sql`, `)}`);
        }
      });
      return outcome;
    },

    /** The ranker search uses: nearest passages by cosine among those `visible` and the filters let through. */
    ranker(): VectorRanker {
      return {
        unavailableReason: () => {
          const current = state();
          return current.ready ? null : current.reason;
        },
        rank: async (queryText: string, visible: SQL, filters: SearchFilters | undefined, limit: number): Promise<RankedChunk[]> => {
          const text = !client!.isLocal && deps.redactForCloud ? await deps.redactForCloud(queryText) : queryText;
          const [embedding] = await client!.embed([text]);
          // Before any passage has vectors (or while a model change rebuilds them) there is nothing to rank.
          if (!(await tableExists(db))) return [];
          return rankVector(db, embedding!, visible, filters, limit, 'auto');
        },
      };
    },
  };
}

export type VectorIndex = ReturnType<typeof createVectorIndex>;

/**
 * How a vector query runs: `auto` (search) chooses by cost; `index` always uses the HNSW index and `exact` never
 * uses any index (the benchmark measures both against each other).
 */
export type VectorPlan = 'auto' | 'index' | 'exact';

/**
 * The `limit` passages nearest to `embedding` by cosine among those `visible` lets through. With `auto`, when at
 * most EXACT_SCAN_MAX_VECTORS vectors are readable they are scanned exactly (the distance is written so that the HNSW
 * index cannot serve the order); otherwise the HNSW index with iterative scans (relaxed order, re-sorted here).
 */
export async function rankVector(db: Db, embedding: readonly number[], visible: SQL, filters: SearchFilters | undefined, limit: number, plan: VectorPlan = 'auto'): Promise<RankedChunk[]> {
  const literal = vectorLiteral(embedding);
  return db.transaction(async (tx) => {
    let useIndex = plan === 'index';
    if (plan === 'auto') {
      const [readable] = await queryRows<{ n: number }>(
        tx,
        sql`select count(*)::int as n from (
              select 1 from document_chunk_vectors v join documents on documents.id = v.document_id
               where (${visible}) and ${filterSql(filters)} limit ${EXACT_SCAN_MAX_VECTORS + 1}) readable`,
      );
      useIndex = (readable?.n ?? 0) > EXACT_SCAN_MAX_VECTORS;
    }
    if (useIndex) {
      await tx.execute(sql`select set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', ${String(Math.max(EF_SEARCH, limit * 2))}, true),
                                  set_config('hnsw.max_scan_tuples', ${String(MAX_SCAN_TUPLES)}, true)`);
    } else if (plan === 'exact') {
      await tx.execute(sql`select set_config('enable_indexscan', 'off', true), set_config('enable_bitmapscan', 'off', true)`);
    }
    // `+ 0` keeps the HNSW index from serving an exact scan's order (it only matches `embedding <=> constant`).
    const distance = useIndex ? sql`v.embedding <=> ${literal}::vector` : sql`(v.embedding <=> ${literal}::vector) + 0`;
    const rows = await queryRows<{ chunk_id: string; document_id: string; distance: number }>(
      tx,
      sql`with nearest as materialized (
            select v.chunk_id, v.document_id, v.embedding <=> ${literal}::vector as distance
              from document_chunk_vectors v join documents on documents.id = v.document_id
             where (${visible}) and ${filterSql(filters)}
             order by ${distance}
             limit ${limit}
          )
          select chunk_id, document_id, distance::float8 as distance from nearest order by distance, chunk_id`,
    );
    return rows.map((row) => ({ chunkId: row.chunk_id, documentId: row.document_id, score: 1 - Number(row.distance) }));
  });
}

import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type DbOrTx } from '../../db/client.js';
import type { Label } from '../../lib/labels.js';

/**
 * BM25 (Robertson/Spärck Jones, Lucene's IDF) computed by the database from the statistics the triggers of
 * src/db/sql/030_search_statistics.sql keep: for a passage d and the query's distinct lexemes t,
 *
 *   score(d) = Σ_t idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl)),   idf(t) = ln(1 + (N − n_t + 0.5)/(n_t + 0.5))
 *
 * with N passages, n_t passages holding t, |d| the passage's lexeme occurrences and avgdl their mean. k1 and b are
 * the values commonly used for BEIR-style corpora (Anserini's defaults for short passages).
 */
export const BM25_K1 = 0.9;
export const BM25_B = 0.4;
/** The text search configuration used for the lexemes of passages and queries alike. */
export const TEXT_SEARCH_CONFIG = 'english';

export interface SearchFilters {
  document_ids?: string[];
  tags?: string[];
  labels?: Label[];
  owner_id?: string;
}

export interface RankedChunk {
  chunkId: string;
  documentId: string;
  score: number;
}

const json = (value: unknown) => sql`${JSON.stringify(value)}::jsonb`;

/** The filters as conditions on `documents` (they narrow what the caller may read; they never widen it). */
export function filterSql(filters: SearchFilters | undefined): SQL {
  const parts: SQL[] = [sql`true`];
  if (filters?.document_ids) parts.push(sql`documents.id::text in (select jsonb_array_elements_text(${json(filters.document_ids)}))`);
  if (filters?.tags) parts.push(sql`documents.tags && array(select jsonb_array_elements_text(${json(filters.tags)}))`);
  if (filters?.labels) parts.push(sql`documents.label in (select jsonb_array_elements_text(${json(filters.labels)}))`);
  if (filters?.owner_id) parts.push(sql`documents.owner_id = ${filters.owner_id}::uuid`);
  return sql.join(parts, sql` and `);
}

/** The distinct lexemes of a query, as the passages were indexed (stemmed, stop words dropped). */
export async function queryLexemes(db: DbOrTx, query: string): Promise<string[]> {
  const rows = await queryRows<{ lexeme: string }>(db, sql`select distinct v.lexeme from unnest(to_tsvector(${TEXT_SEARCH_CONFIG}::regconfig, ${query})) v order by v.lexeme`);
  return rows.map((row) => row.lexeme);
}

/**
 * The best `limit` passages by BM25 among those `visible` lets through (the documents policy as SQL, or `true` for
 * the benchmark's unauthorised baseline) and the filters. The access rule is a condition of the very query that
 * ranks and limits: the limit is filled with readable passages, and what the caller may not read never leaves the
 * database, not even as a count.
 */
export async function rankKeyword(db: DbOrTx, lexemes: readonly string[], visible: SQL, filters: SearchFilters | undefined, limit: number): Promise<RankedChunk[]> {
  if (lexemes.length === 0) return [];
  const rows = await queryRows<{ chunk_id: string; document_id: string; score: number }>(
    db,
    sql`with stats as (
          select greatest(chunk_count, 1)::float8 as n,
                 greatest(term_count::float8 / greatest(chunk_count, 1), 1) as avgdl
            from search_corpus_stats where id = 1
        ),
        idf as (
          select st.term, ln(1 + (stats.n - st.chunk_frequency + 0.5) / (st.chunk_frequency + 0.5)) as weight
            from search_term_stats st, stats
           where st.term in (select jsonb_array_elements_text(${json(lexemes)}))
        )
        select p.chunk_id, p.document_id,
               sum(idf.weight * p.tf * ${BM25_K1 + 1}::float8
                   / (p.tf + ${BM25_K1}::float8 * (1 - ${BM25_B}::float8 + ${BM25_B}::float8 * p.chunk_terms / stats.avgdl)))::float8 as score
          from idf
          join search_postings p on p.term = idf.term
          join documents on documents.id = p.document_id
          cross join stats
         where (${visible}) and ${filterSql(filters)}
         group by p.chunk_id, p.document_id
         order by score desc, p.chunk_id
         limit ${limit}`,
  );
  return rows.map((row) => ({ chunkId: row.chunk_id, documentId: row.document_id, score: Number(row.score) }));
}

/** Which of these words (as they appear in a passage) match one of the query's lexemes: the highlights. */
export async function matchingWords(db: DbOrTx, words: readonly string[], lexemes: readonly string[]): Promise<Set<string>> {
  if (words.length === 0 || lexemes.length === 0) return new Set();
  const rows = await queryRows<{ word: string }>(
    db,
    sql`select w as word from jsonb_array_elements_text(${json(words)}) w
         where exists (select 1 from unnest(to_tsvector(${TEXT_SEARCH_CONFIG}::regconfig, w)) v
                        where v.lexeme in (select jsonb_array_elements_text(${json(lexemes)})))`,
  );
  return new Set(rows.map((row) => row.word));
}

import { sql } from 'drizzle-orm';
import { bigint, boolean, check, customType, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import type { Label } from '../../lib/labels.js';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users, type Role } from './users.js';

export const DOCUMENT_STATUSES = ['queued', 'extracting', 'chunking', 'embedding', 'indexed', 'failed'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];
export const DOCUMENT_VISIBILITIES = ['private', 'organization'] as const;
export type DocumentVisibility = (typeof DOCUMENT_VISIBILITIES)[number];
export type LabelSource = 'user' | 'auto';

/** PostgreSQL full-text lexemes: what keyword search needs, and not the text itself. */
const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

/**
 * An uploaded document. The original bytes and the extracted text are field ciphertexts bound to the row
 * (`documents:<id>:content`, `documents:<id>:text`), so every instance and every backup holds them encrypted.
 * `generation` counts (re)indexing runs: a job carries the generation it was started for, and a stale job stops.
 */
export const documents = pgTable(
  'documents',
  {
    id: id(),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    filename: text('filename').notNull(),
    mimeType: text('mime_type').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    sha256: text('sha256').notNull(),
    label: text('label').$type<Label>().notNull(),
    labelSource: text('label_source').$type<LabelSource>().notNull().default('user'),
    /** Counts per detected type (PII, secrets) from auto-classification; never the values. */
    detected: jsonb('detected').$type<Record<string, number>>().notNull().default({}),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    visibility: text('visibility').$type<DocumentVisibility>().notNull().default('private'),
    status: text('status').$type<DocumentStatus>().notNull().default('queued'),
    progress: doublePrecision('progress').notNull().default(0),
    error: text('error'),
    pageCount: integer('page_count'),
    chunkCount: integer('chunk_count').notNull().default(0),
    vectorIndexed: boolean('vector_indexed').notNull().default(false),
    vectorReason: text('vector_reason'),
    /** The embedding model `vector_indexed`/`vector_reason` were decided for; another model means "embed again". */
    vectorModel: text('vector_model'),
    encryptedContent: text('encrypted_content').notNull(),
    encryptedText: text('encrypted_text'),
    generation: integer('generation').notNull().default(1),
    /** When the current stage started; a stage older than the job timeout belongs to a crashed worker. */
    stageStartedAt: timestampMs('stage_started_at'),
    attempts: integer('attempts').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('documents_owner_sha256_idx').on(table.ownerId, table.sha256),
    index('documents_created_idx').on(table.createdAt, table.id),
    index('documents_status_idx').on(table.status),
    check('documents_label_check', sql`${table.label} in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')`),
    check('documents_label_source_check', sql`${table.labelSource} in ('user', 'auto')`),
    check('documents_visibility_check', sql`${table.visibility} in ('private', 'organization')`),
    check('documents_status_check', sql`${table.status} in ('queued', 'extracting', 'chunking', 'embedding', 'indexed', 'failed')`),
  ],
);

/**
 * A passage of a document's extracted text. Its text and heading path are one field ciphertext
 * (`document_chunks:<id>:content`); `search_vector` holds only the lexemes keyword search matches on.
 */
export const documentChunks = pgTable(
  'document_chunks',
  {
    id: id(),
    documentId: uuid('document_id')
      .notNull()
      .references(() => documents.id, { onDelete: 'cascade' }),
    generation: integer('generation').notNull(),
    index: integer('index').notNull(),
    encryptedContent: text('encrypted_content').notNull(),
    page: integer('page'),
    charStart: integer('char_start').notNull(),
    charEnd: integer('char_end').notNull(),
    tokenCount: integer('token_count').notNull(),
    searchVector: tsvector('search_vector').notNull(),
    /** BM25's document length: how many indexed terms (lexeme occurrences) the passage has. */
    termCount: integer('term_count').notNull().default(0),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('document_chunks_position_idx').on(table.documentId, table.generation, table.index),
  ],
);

/** Read access to a document's content for one user or every holder of a role (clearance still applies). */
export const documentShares = pgTable(
  'document_shares',
  {
    id: id(),
    documentId: uuid('document_id')
      .notNull()
      .references(() => documents.id, { onDelete: 'cascade' }),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
    role: text('role').$type<Role>(),
    createdBy: uuid('created_by').notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('document_shares_user_idx').on(table.documentId, table.userId),
    uniqueIndex('document_shares_role_idx').on(table.documentId, table.role),
    index('document_shares_user_lookup_idx').on(table.userId),
    check('document_shares_target_check', sql`(${table.userId} is null) <> (${table.role} is null)`),
    check('document_shares_role_check', sql`${table.role} is null or ${table.role} in ('ANALYST', 'MANAGER', 'ADMIN')`),
  ],
);

/**
 * BM25 postings: for each lexeme, the passages that hold it with its term frequency, the passage's length and its
 * document (the access rule is applied by joining `documents`). Written only by the triggers on `document_chunks`.
 */
export const searchPostings = pgTable(
  'search_postings',
  {
    term: text('term').notNull(),
    chunkId: uuid('chunk_id').notNull(),
    documentId: uuid('document_id').notNull(),
    tf: integer('tf').notNull(),
    chunkTerms: integer('chunk_terms').notNull(),
  },
  (table) => [primaryKey({ columns: [table.term, table.chunkId] })],
);

/**
 * BM25 corpus statistics, kept by triggers on `document_chunks` in the same transaction as every chunk insert and
 * delete (src/db/sql/030_search_statistics.sql): for each lexeme, how many passages contain it.
 */
export const searchTermStats = pgTable('search_term_stats', {
  term: text('term').primaryKey(),
  chunkFrequency: integer('chunk_frequency').notNull(),
});

/** One row (id 1): how many passages there are and how many terms they hold together (BM25's average length). */
export const searchCorpusStats = pgTable(
  'search_corpus_stats',
  {
    id: integer('id').primaryKey(),
    chunkCount: bigint('chunk_count', { mode: 'number' }).notNull().default(0),
    termCount: bigint('term_count', { mode: 'number' }).notNull().default(0),
  },
  (table) => [check('search_corpus_stats_single_row', sql`${table.id} = 1`)],
);

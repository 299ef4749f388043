import { and, asc, desc, eq, gt, ilike, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { documentChunks, documents, documentShares, type DocumentStatus } from '../../db/schema/documents.js';
import type { Label } from '../../lib/labels.js';

export type DocumentRow = typeof documents.$inferSelect;
export type NewDocumentRow = typeof documents.$inferInsert;
export type ChunkRow = typeof documentChunks.$inferSelect;
export type ShareRow = typeof documentShares.$inferSelect;

/** A document row without its (large) ciphertexts: what lists and status checks need. */
const metadataColumns = {
  id: documents.id,
  ownerId: documents.ownerId,
  title: documents.title,
  filename: documents.filename,
  mimeType: documents.mimeType,
  sizeBytes: documents.sizeBytes,
  sha256: documents.sha256,
  label: documents.label,
  labelSource: documents.labelSource,
  detected: documents.detected,
  tags: documents.tags,
  visibility: documents.visibility,
  status: documents.status,
  progress: documents.progress,
  error: documents.error,
  pageCount: documents.pageCount,
  chunkCount: documents.chunkCount,
  vectorIndexed: documents.vectorIndexed,
  vectorReason: documents.vectorReason,
  vectorModel: documents.vectorModel,
  generation: documents.generation,
  stageStartedAt: documents.stageStartedAt,
  attempts: documents.attempts,
  createdAt: documents.createdAt,
  updatedAt: documents.updatedAt,
};
export type DocumentMetadata = Omit<DocumentRow, 'encryptedContent' | 'encryptedText'>;

export interface DocumentListFilter {
  visible: SQL | undefined;
  label?: Label;
  tag?: string;
  status?: DocumentStatus;
  ownerId?: string;
  titleContains?: string;
  before?: { createdAt: Date; id: string };
  limit: number;
}

export interface NewChunk {
  id: string;
  index: number;
  encryptedContent: string;
  /** Plain text for the lexemes only; it is not stored. */
  text: string;
  page: number | null;
  charStart: number;
  charEnd: number;
  tokenCount: number;
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (char) => `\\${char}`);
}

const ACTIVE_STATUSES: DocumentStatus[] = ['queued', 'extracting', 'chunking', 'embedding'];

export function createDocumentsRepository() {
  return {
    /** Undefined when this owner already has a document with these bytes (the unique index decides). */
    async insert(db: DbOrTx, row: NewDocumentRow): Promise<DocumentMetadata | undefined> {
      const [inserted] = await db.insert(documents).values(row).onConflictDoNothing().returning(metadataColumns);
      return inserted;
    },

    async findMetadata(db: DbOrTx, id: string): Promise<DocumentMetadata | undefined> {
      const [row] = await db.select(metadataColumns).from(documents).where(eq(documents.id, id)).limit(1);
      return row;
    },

    async findByOwnerAndHash(db: DbOrTx, ownerId: string, sha256: string): Promise<DocumentMetadata | undefined> {
      const [row] = await db.select(metadataColumns).from(documents).where(and(eq(documents.ownerId, ownerId), eq(documents.sha256, sha256))).limit(1);
      return row;
    },

    async findContent(db: DbOrTx, id: string): Promise<{ encryptedContent: string; encryptedText: string | null } | undefined> {
      const [row] = await db
        .select({ encryptedContent: documents.encryptedContent, encryptedText: documents.encryptedText })
        .from(documents)
        .where(eq(documents.id, id))
        .limit(1);
      return row;
    },

    async sharesFor(db: DbOrTx, documentIds: string[]): Promise<ShareRow[]> {
      if (documentIds.length === 0) return [];
      return db.select().from(documentShares).where(inArray(documentShares.documentId, documentIds)).orderBy(asc(documentShares.createdAt), asc(documentShares.id));
    },

    /** Newest first, keyset-paginated on (created_at, id); fetches `limit + 1`. */
    async list(db: DbOrTx, filter: DocumentListFilter): Promise<DocumentMetadata[]> {
      const conditions: SQL[] = [];
      if (filter.visible) conditions.push(filter.visible);
      if (filter.label) conditions.push(eq(documents.label, filter.label));
      if (filter.tag) conditions.push(sql`${filter.tag} = any(${documents.tags})`);
      if (filter.status) conditions.push(eq(documents.status, filter.status));
      if (filter.ownerId) conditions.push(eq(documents.ownerId, filter.ownerId));
      if (filter.titleContains) conditions.push(ilike(documents.title, `%${escapeLike(filter.titleContains)}%`));
      if (filter.before) {
        const { createdAt, id } = filter.before;
        conditions.push(or(lt(documents.createdAt, createdAt), and(eq(documents.createdAt, createdAt), lt(documents.id, id)))!);
      }
      return db
        .select(metadataColumns)
        .from(documents)
        .where(conditions.length > 0 ? and(...conditions) : undefined)
        .orderBy(desc(documents.createdAt), desc(documents.id))
        .limit(filter.limit + 1);
    },

    async update(db: DbOrTx, id: string, patch: Partial<NewDocumentRow>): Promise<DocumentMetadata | undefined> {
      const [row] = await db
        .update(documents)
        .set({ ...patch, updatedAt: sql`now()` })
        .where(eq(documents.id, id))
        .returning(metadataColumns);
      return row;
    },

    /**
     * Moves a document of this generation to a processing stage, if it is still being processed; undefined when a
     * newer generation (reindex) or a final state makes this run stale.
     */
    async advance(
      db: DbOrTx,
      id: string,
      generation: number,
      patch: Partial<NewDocumentRow> & { status: DocumentStatus },
    ): Promise<DocumentMetadata | undefined> {
      const [row] = await db
        .update(documents)
        .set({ ...patch, stageStartedAt: sql`now()`, updatedAt: sql`now()` })
        .where(and(eq(documents.id, id), eq(documents.generation, generation), inArray(documents.status, ACTIVE_STATUSES)))
        .returning(metadataColumns);
      return row;
    },

    /** Starts a new generation (reindex): the running job, if any, finds itself stale and stops. */
    async restart(db: DbOrTx, id: string): Promise<DocumentMetadata | undefined> {
      const [row] = await db
        .update(documents)
        .set({ generation: sql`${documents.generation} + 1`, status: 'queued', progress: 0, error: null, attempts: 0, stageStartedAt: null, updatedAt: sql`now()` })
        .where(eq(documents.id, id))
        .returning(metadataColumns);
      return row;
    },

    async delete(db: DbOrTx, id: string): Promise<boolean> {
      const rows = await db.delete(documents).where(eq(documents.id, id)).returning({ id: documents.id });
      return rows.length > 0;
    },

    /** The chunks of one generation, replacing any earlier ones; lexemes are computed by the database. */
    async replaceChunks(db: DbOrTx, documentId: string, generation: number, chunks: NewChunk[]): Promise<void> {
      await db.delete(documentChunks).where(eq(documentChunks.documentId, documentId));
      const BATCH = 200;
      for (let start = 0; start < chunks.length; start += BATCH) {
        await db.insert(documentChunks).values(
          chunks.slice(start, start + BATCH).map((chunk) => ({
            id: chunk.id,
            documentId,
            generation,
            index: chunk.index,
            encryptedContent: chunk.encryptedContent,
            page: chunk.page,
            charStart: chunk.charStart,
            charEnd: chunk.charEnd,
            tokenCount: chunk.tokenCount,
            // term_count (BM25's passage length) is set from this vector by a trigger (030_search_statistics.sql), so
            // the text is analysed once.
            searchVector: sql`to_tsvector('english', ${chunk.text})`,
          })),
        );
      }
    },

    async listChunks(db: DbOrTx, documentId: string, afterIndex: number | undefined, limit: number): Promise<ChunkRow[]> {
      return db
        .select()
        .from(documentChunks)
        .where(afterIndex === undefined ? eq(documentChunks.documentId, documentId) : and(eq(documentChunks.documentId, documentId), gt(documentChunks.index, afterIndex)))
        .orderBy(asc(documentChunks.index))
        .limit(limit + 1);
    },

    async insertShare(db: DbOrTx, row: { documentId: string; userId: string | null; role: string | null; createdBy: string }): Promise<ShareRow | undefined> {
      const [inserted] = await db
        .insert(documentShares)
        .values({ ...row, role: row.role as ShareRow['role'] })
        .onConflictDoNothing()
        .returning();
      return inserted;
    },

    async deleteShare(db: DbOrTx, documentId: string, shareId: string): Promise<ShareRow | undefined> {
      const [row] = await db.delete(documentShares).where(and(eq(documentShares.id, shareId), eq(documentShares.documentId, documentId))).returning();
      return row;
    },

    /** Indexed documents whose vectors are not for `model` (a new model, or an embedding that failed). */
    async needingVectors(db: DbOrTx, model: string, limit: number): Promise<{ id: string; generation: number }[]> {
      return db
        .select({ id: documents.id, generation: documents.generation })
        .from(documents)
        .where(and(eq(documents.status, 'indexed'), or(isNull(documents.vectorModel), sql`${documents.vectorModel} <> ${model}`)))
        .orderBy(asc(documents.updatedAt))
        .limit(limit);
    },

    /** The texts of a document's passages are needed again (re-embedding): their ciphertexts, in order. */
    async chunkCiphertexts(db: DbOrTx, documentId: string): Promise<{ id: string; encryptedContent: string }[]> {
      return db.select({ id: documentChunks.id, encryptedContent: documentChunks.encryptedContent }).from(documentChunks).where(eq(documentChunks.documentId, documentId)).orderBy(asc(documentChunks.index));
    },

    /** Documents whose processing should be (re)started: queued and not picked up, or a stage older than `staleBefore`. */
    async stalled(db: DbOrTx, staleBefore: Date, limit: number): Promise<{ id: string; generation: number }[]> {
      return db
        .select({ id: documents.id, generation: documents.generation })
        .from(documents)
        .where(
          and(
            inArray(documents.status, ACTIVE_STATUSES),
            or(and(isNull(documents.stageStartedAt), lt(documents.updatedAt, staleBefore)), lt(documents.stageStartedAt, staleBefore)),
          ),
        )
        .orderBy(asc(documents.updatedAt))
        .limit(limit);
    },
  };
}

export type DocumentsRepository = ReturnType<typeof createDocumentsRepository>;

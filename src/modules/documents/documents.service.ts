import { createHash, randomUUID } from 'node:crypto';
import type { Db, Tx } from '../../db/client.js';
import type { DocumentStatus, DocumentVisibility } from '../../db/schema/documents.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { ConflictError, NotFoundError, UnsupportedMediaTypeError, ValidationError } from '../../lib/errors.js';
import type { JobQueue } from '../../lib/infra/jobs.js';
import { higherLabel, labelRank, type Label } from '../../lib/labels.js';
import { decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditEvent } from '../audit/audit.chain.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, isRole, SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import type { NotifyInput } from '../notifications/notifications.types.js';
import type { FieldEncryptionService } from '../vault/field-cipher.js';
import { DocumentRejectedError, preflight, sniffMediaType } from './documents.formats.js';
import { canManage, canReadContent, canSeeMetadata, metadataVisibleSql } from './documents.policy.js';
import type { ChunkRow, DocumentMetadata, DocumentsRepository, ShareRow } from './documents.repository.js';
import type { AccessLogEntry, ChunkView, DocumentView, ShareView } from './documents.schemas.js';
import { EmbeddingFailedError, type EmbedOutcome, type VectorIndex } from './documents.vectors.js';
import { ParseFailedError, type ParserPool } from './documents.worker-pool.js';

export const DOCUMENT_PROCESS_JOB = 'documents.process';
export const DOCUMENT_EMBED_JOB = 'documents.embed';

/** A run that a reindex (or a model change) overtook: its writes are rolled back and it stops quietly. */
class StaleRunError extends Error {}
const RESOURCE_TYPE = 'document';
/** A processing stage older than this belongs to a worker that died: the sweep starts the document again. */
export const STALE_STAGE_MS = 5 * 60_000;
/** How many times a document is tried before it is marked failed for good. */
export const MAX_PROCESSING_ATTEMPTS = 3;

export function documentContentAad(id: string): string {
  return `documents:${id}:content`;
}
export function documentTextAad(id: string): string {
  return `documents:${id}:text`;
}
export function chunkContentAad(id: string): string {
  return `document_chunks:${id}:content`;
}

export interface UploadInput {
  filename: string;
  bytes: Buffer;
  title?: string;
  label?: Label;
  tags?: string[];
  visibility?: DocumentVisibility;
}

export interface DocumentNotifier {
  notify(input: NotifyInput, uow?: UnitOfWork): Promise<unknown>;
}

export interface DocumentsServiceDeps {
  db: Db;
  repository: DocumentsRepository;
  audit: Pick<AuditRecorder, 'record' | 'recordMany'>;
  fieldCipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  jobs: Pick<JobQueue, 'enqueue'>;
  parser: Pick<ParserPool, 'parse'>;
  notifier: () => DocumentNotifier | undefined;
  /** Whether a user id names an active user (shares go to real people). */
  userExists: (userId: string) => Promise<boolean>;
  chunking: { chunkTokens: number; overlapTokens: number };
  zipLimits: { maxUnzippedBytes: number; maxEntries: number };
  /** Turns a lower label into an approval request (the declassification built-in); absent: lowering is refused. */
  declassifier?: () => ((actor: Actor, row: DocumentMetadata, to: Label, context: RequestContext) => Promise<{ approvalId: string }>) | undefined;
  /** Reads the audit trail of one document (the audit module's query service). */
  accessTrail?: () => ((documentId: string, query: { limit: number; cursor?: string }, eventTypes: readonly string[]) => Promise<Page<AuditEvent>>) | undefined;
  /** Why documents are indexed for keyword search only when there is no vector index at all. */
  vectorReason: string;
  /** The vector index (pgvector and an embedding model); absent: keyword search only. */
  vectors?: () => VectorIndex | undefined;
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  now?: () => Date;
}

function normaliseTags(tags: readonly string[] | undefined): string[] {
  return [...new Set((tags ?? []).map((tag) => tag.trim()).filter((tag) => tag !== ''))];
}

function presentShare(row: ShareRow): ShareView {
  return row.userId ? { id: row.id, user_id: row.userId } : { id: row.id, role: row.role as Role };
}

export function presentDocument(row: DocumentMetadata, shares: readonly ShareRow[]): DocumentView {
  return {
    id: row.id,
    title: row.title,
    filename: row.filename,
    mime_type: row.mimeType,
    size_bytes: row.sizeBytes,
    sha256: row.sha256,
    label: row.label,
    label_source: row.labelSource,
    detected: row.detected,
    tags: row.tags,
    visibility: row.visibility,
    owner_id: row.ownerId,
    status: row.status,
    progress: row.progress,
    error: row.error,
    page_count: row.pageCount,
    chunk_count: row.chunkCount,
    vector_indexed: row.vectorIndexed,
    vector_reason: row.vectorReason,
    shares: shares.filter((share) => share.documentId === row.id).map(presentShare),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** The events an access log is made of (those that also list the document in `details.document_ids` count too). */
export const ACCESS_EVENT_TYPES = ['DOCUMENT_ACCESSED', 'DOCUMENT_SEARCHED', 'USER_QUERY', 'LLM_REQUEST', 'LLM_ROUTED'] as const;

const ACCESS_ACTIONS: Record<string, AccessLogEntry['action']> = { text: 'read', chunks: 'read', file: 'downloaded', retrieved: 'retrieved', cited: 'cited' };

function presentAccess(event: AuditEvent, auditor: boolean): AccessLogEntry {
  const details = event.details as { access?: string; mode_used?: string };
  const action = event.event_type === 'DOCUMENT_SEARCHED' ? 'searched' : (ACCESS_ACTIONS[details.access ?? ''] ?? 'retrieved');
  return {
    event_id: event.id,
    seq: event.seq,
    event_type: event.event_type,
    action,
    user_id: event.user_id,
    session_id: event.session_id,
    created_at: event.created_at,
    // The rest of an event (other documents a search found, the query's digest) is for auditors only.
    ...(auditor ? { details: event.details } : {}),
  };
}

function titleFromFilename(filename: string): string {
  const base = filename.replace(/^.*[\\/]/, '');
  const dot = base.lastIndexOf('.');
  return (dot > 0 ? base.slice(0, dot) : base).slice(0, 300) || 'Untitled';
}

/**
 * Documents: upload (encrypted original), the processing pipeline (extract → chunk → index, in worker threads,
 * driven by jobs), content reads under the access policy, classification labels, shares and real deletion.
 * Every change is audited in its own transaction; audit details carry ids and labels, never content.
 */
export function createDocumentsService(deps: DocumentsServiceDeps) {
  const { db, repository, audit, fieldCipher, jobs } = deps;
  const now = deps.now ?? (() => new Date());

  async function loadVisible(actor: Actor, id: string): Promise<{ row: DocumentMetadata; shares: ShareRow[] }> {
    const row = await repository.findMetadata(db, id);
    if (!row) throw new NotFoundError('Document');
    const shares = await repository.sharesFor(db, [id]);
    if (!canSeeMetadata(actor, { ...row, shares })) throw new NotFoundError('Document');
    return { row, shares };
  }

  /** Content reads: 404 for anyone the policy does not let read it (admins included), exactly as for a missing id. */
  async function loadReadable(actor: Actor, id: string): Promise<{ row: DocumentMetadata; shares: ShareRow[] }> {
    const loaded = await loadVisible(actor, id);
    if (!canReadContent(actor, { ...loaded.row, shares: loaded.shares })) throw new NotFoundError('Document');
    return loaded;
  }

  async function loadManageable(actor: Actor, id: string): Promise<{ row: DocumentMetadata; shares: ShareRow[] }> {
    const loaded = await loadVisible(actor, id);
    if (!canManage(actor, loaded.row)) throw new NotFoundError('Document');
    return loaded;
  }

  function event(actor: Actor | null, type: AuditEventInput['eventType'], documentId: string, details: Record<string, unknown>, context: RequestContext): AuditEventInput {
    return { eventType: type, userId: actor?.userId ?? null, sessionId: actor?.sessionId || null, resourceType: RESOURCE_TYPE, resourceId: documentId, details, context };
  }

  async function recordAccess(actor: Actor, row: DocumentMetadata, what: 'text' | 'file' | 'chunks', context: RequestContext): Promise<void> {
    await withTransaction(db, async (uow) => {
      await audit.record(uow.tx, event(actor, 'DOCUMENT_ACCESSED', row.id, { access: what, label: row.label, owner_id: row.ownerId }, context));
    }, deps.logger);
  }

  function enqueueProcessing(id: string, generation: number, suffix = ''): Promise<void> {
    return jobs.enqueue(DOCUMENT_PROCESS_JOB, { documentId: id, generation }, { jobId: `documents-process-${id}-${generation}${suffix}`, attempts: 3, backoffMs: 2_000 });
  }

  async function notifyOwner(uow: UnitOfWork, row: DocumentMetadata, outcome: 'indexed' | 'failed'): Promise<void> {
    const notifier = deps.notifier();
    if (!notifier) return;
    await notifier.notify(
      {
        userId: row.ownerId,
        type: outcome === 'indexed' ? 'DOCUMENT_INDEXED' : 'DOCUMENT_PROCESSING_FAILED',
        // Titles may be 300 characters; a notification's title at most 200.
        title: `${outcome === 'indexed' ? 'Document indexed' : 'Document processing failed'}: ${row.title.length > 160 ? `${row.title.slice(0, 159)}…` : row.title}`,
        message: outcome === 'indexed' ? `"${row.title}" is ready: ${row.chunkCount} passages indexed.` : `"${row.title}" could not be processed: ${row.error ?? 'unknown error'}`,
        priority: outcome === 'indexed' ? 'low' : 'normal',
        data: { document_id: row.id, status: row.status, link: `/api/v1/documents/${row.id}` },
      },
      uow,
    );
  }

  async function markFailed(id: string, generation: number, reason: string): Promise<void> {
    await withTransaction(db, async (uow) => {
      const row = await repository.advance(uow.tx, id, generation, { status: 'failed', error: reason, progress: 1 });
      if (row) await notifyOwner(uow, row, 'failed');
    }, deps.logger);
  }

  /**
   * One run of the pipeline for one generation. Idempotent: every step is a conditional update on (id, generation,
   * still processing), so a duplicated, retried or resumed job redoes at most the current run and a stale one stops.
   */
  async function processDocument(id: string, generation: number): Promise<void> {
    const started = await repository.advance(db, id, generation, { status: 'extracting', progress: 0.1 });
    if (!started) return;
    const attempts = started.attempts + 1;
    await repository.update(db, id, { attempts });
    if (attempts > MAX_PROCESSING_ATTEMPTS) {
      await markFailed(id, generation, `processing was interrupted ${MAX_PROCESSING_ATTEMPTS} times; reindex to try again`);
      return;
    }
    const content = await repository.findContent(db, id);
    if (!content) return;
    const bytes = Buffer.from(fieldCipher.decrypt(content.encryptedContent, documentContentAad(id)), 'base64');
    let parsed;
    try {
      parsed = await deps.parser.parse({ mediaType: started.mimeType as never, bytes, chunkTokens: deps.chunking.chunkTokens, overlapTokens: deps.chunking.overlapTokens, zipLimits: deps.zipLimits });
    } catch (error) {
      if (error instanceof ParseFailedError) {
        await markFailed(id, generation, error.message);
        return;
      }
      throw error;
    }
    if (!(await repository.advance(db, id, generation, { status: 'chunking', progress: 0.5 }))) return;

    const chunks = parsed.chunks.map((chunk) => {
      const chunkId = randomUUID();
      return {
        id: chunkId,
        index: chunk.index,
        text: chunk.text,
        encryptedContent: fieldCipher.encrypt(JSON.stringify({ text: chunk.text, heading_path: chunk.headingPath }), chunkContentAad(chunkId)),
        page: chunk.page,
        charStart: chunk.charStart,
        charEnd: chunk.charEnd,
        tokenCount: chunk.tokenCount,
      };
    });
    const { floor, detected } = parsed.classification;
    const stored = await withTransaction(db, async (uow) => {
      const current = await repository.findMetadata(uow.tx, id);
      if (!current || current.generation !== generation || current.status !== 'chunking') return undefined;
      await repository.replaceChunks(uow.tx, id, generation, chunks);
      // Auto-classification only ever raises the label.
      const raised = floor !== null && labelRank(floor) > labelRank(current.label) ? floor : null;
      const row = await repository.advance(uow.tx, id, generation, {
        status: 'embedding',
        progress: 0.8,
        encryptedText: fieldCipher.encrypt(parsed.text, documentTextAad(id)),
        chunkCount: chunks.length,
        pageCount: parsed.pageCount,
        detected,
        ...(raised ? { label: raised, labelSource: 'auto' as const } : {}),
      });
      if (row && raised) {
        await audit.record(uow.tx, event(null, 'DOCUMENT_RECLASSIFIED', id, { from: current.label, to: raised, by: 'auto', detected, approval_id: null }, SYSTEM_CONTEXT));
      }
      return row;
    }, deps.logger);
    if (!stored) return;

    await finishIndexing(stored, chunks.map((chunk) => ({ id: chunk.id, text: chunk.text })));
  }

  /**
   * The embedding step and the end of a run: vectors (when a model, pgvector and the label allow them) and the
   * `indexed` state in one commit with DOCUMENT_INDEXED. An embedding failure does not fail the document: it is
   * indexed for keyword search, says why it has no vectors, and the vector sweep tries again later.
   */
  async function finishIndexing(stored: DocumentMetadata, passages: { id: string; text: string }[]): Promise<void> {
    const { id, generation } = stored;
    const commit = async (outcome: EmbedOutcome, store?: (tx: Tx) => Promise<void>) => {
      await withTransaction(db, async (uow) => {
        if (store) {
          const current = await repository.findMetadata(uow.tx, id);
          if (!current || current.generation !== generation || current.status !== 'embedding') throw new StaleRunError();
          await store(uow.tx);
        }
        const row = await repository.advance(uow.tx, id, generation, { status: 'indexed', progress: 1, error: null, vectorIndexed: outcome.vectorIndexed, vectorReason: outcome.vectorReason, vectorModel: outcome.vectorModel });
        if (!row) return;
        await audit.record(uow.tx, event(null, 'DOCUMENT_INDEXED', id, { label: row.label, chunk_count: row.chunkCount, page_count: row.pageCount, vector_indexed: outcome.vectorIndexed, generation }, SYSTEM_CONTEXT));
        await notifyOwner(uow, row, 'indexed');
      }, deps.logger);
    };
    const vectors = deps.vectors?.();
    if (!vectors) {
      await commit({ vectorIndexed: false, vectorReason: deps.vectorReason, vectorModel: null });
      return;
    }
    try {
      await vectors.embedDocument(id, stored.label, passages, (outcome, store) => commit(outcome, store));
    } catch (error) {
      if (error instanceof StaleRunError) return;
      if (!(error instanceof EmbeddingFailedError)) throw error;
      const reason = `embedding failed, keyword search only until it is retried: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
      deps.logger?.warn({ document_id: id, err: reason }, 'document embedding failed');
      await commit({ vectorIndexed: false, vectorReason: reason, vectorModel: null });
    }
  }

  /** Vectors for an indexed document whose vectors are missing or from another model (model change, failure). */
  async function embedAgain(id: string, generation: number): Promise<void> {
    const vectors = deps.vectors?.();
    if (!vectors) return;
    const row = await repository.findMetadata(db, id);
    if (!row || row.generation !== generation || row.status !== 'indexed') return;
    const passages = (await repository.chunkCiphertexts(db, id)).map((chunk) => ({
      id: chunk.id,
      text: (JSON.parse(fieldCipher.decrypt(chunk.encryptedContent, chunkContentAad(chunk.id))) as { text: string }).text,
    }));
    const write = async (outcome: EmbedOutcome, store: (tx: Tx) => Promise<void>) => {
      await withTransaction(db, async (uow) => {
        const current = await repository.findMetadata(uow.tx, id);
        if (!current || current.generation !== generation || current.status !== 'indexed') throw new StaleRunError();
        await store(uow.tx);
        await repository.update(uow.tx, id, { vectorIndexed: outcome.vectorIndexed, vectorReason: outcome.vectorReason, vectorModel: outcome.vectorModel });
      }, deps.logger);
    };
    try {
      await vectors.embedDocument(id, row.label, passages, write);
    } catch (error) {
      if (error instanceof StaleRunError) return;
      if (!(error instanceof EmbeddingFailedError)) throw error;
      const reason = `embedding failed, keyword search only until it is retried: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
      await repository.update(db, id, { vectorIndexed: false, vectorReason: reason, vectorModel: null });
      throw error;
    }
  }

  return {
    processDocument,
    embedAgain,

    /**
     * The vector sweep: indexed documents whose vectors are not for the current model are embedded again in the
     * background (idempotent jobs; a document is re-read each time). Returns how many were enqueued.
     */
    async embedPending(limit = 50): Promise<number> {
      const model = deps.vectors?.()?.state();
      if (!model?.ready) return 0;
      const pending = await repository.needingVectors(db, model.model, limit);
      for (const { id, generation } of pending) {
        await jobs.enqueue(DOCUMENT_EMBED_JOB, { documentId: id, generation }, { jobId: `documents-embed-${id}-${generation}-${randomUUID()}`, attempts: 3, backoffMs: 5_000 });
      }
      return pending.length;
    },

    /** Runs the pipeline for a document's current generation here and now (the import command), then reports it. */
    async processNow(id: string): Promise<DocumentView | undefined> {
      const row = await repository.findMetadata(db, id);
      if (!row) return undefined;
      await processDocument(id, row.generation);
      const after = await repository.findMetadata(db, id);
      return after ? presentDocument(after, await repository.sharesFor(db, [id])) : undefined;
    },

    /** Crash recovery: documents whose stage is older than a run could take are started again from their stored original. */
    async resumeStalled(): Promise<number> {
      const stalled = await repository.stalled(db, new Date(now().getTime() - STALE_STAGE_MS), 100);
      for (const { id, generation } of stalled) {
        await enqueueProcessing(id, generation, `-resume-${randomUUID()}`);
      }
      return stalled.length;
    },

    /**
     * `POST /documents`: the type is sniffed from the bytes (and must agree with the name), identical bytes of the
     * same owner return the existing document, and the row, its encrypted original and its audit event are one commit.
     */
    async upload(actor: Actor, input: UploadInput, context: RequestContext): Promise<{ created: boolean; document: DocumentView }> {
      if (input.bytes.length === 0) throw new ValidationError('The file is empty', [{ pointer: '/file', detail: 'must not be empty' }]);
      let mediaType;
      try {
        mediaType = await sniffMediaType(input.bytes, input.filename);
        await preflight(mediaType, input.bytes, deps.zipLimits);
      } catch (error) {
        if (error instanceof DocumentRejectedError) {
          if (error.status === 415) throw new UnsupportedMediaTypeError(error.message);
          throw new ValidationError(error.message, [{ pointer: '/file', detail: error.message }]);
        }
        throw error;
      }
      const sha256 = createHash('sha256').update(input.bytes).digest('hex');
      const existing = await repository.findByOwnerAndHash(db, actor.userId, sha256);
      if (existing) return { created: false, document: presentDocument(existing, await repository.sharesFor(db, [existing.id])) };
      const id = randomUUID();
      const label = input.label ?? 'INTERNAL';
      const inserted = await withTransaction(db, async (uow) => {
        const row = await repository.insert(uow.tx, {
          id,
          ownerId: actor.userId,
          title: input.title?.trim() || titleFromFilename(input.filename),
          filename: input.filename.replace(/^.*[\\/]/, '').slice(0, 255),
          mimeType: mediaType,
          sizeBytes: input.bytes.length,
          sha256,
          label,
          labelSource: 'user',
          tags: normaliseTags(input.tags),
          visibility: input.visibility ?? 'private',
          encryptedContent: fieldCipher.encrypt(input.bytes.toString('base64'), documentContentAad(id)),
        });
        if (!row) return undefined;
        await audit.record(uow.tx, event(actor, 'DOCUMENT_UPLOADED', id, { label, mime_type: mediaType, size_bytes: input.bytes.length, visibility: row.visibility }, context));
        uow.afterCommit(() => enqueueProcessing(id, row.generation));
        return row;
      }, deps.logger);
      if (!inserted) {
        // The same bytes uploaded concurrently: the other request's document stands.
        const winner = await repository.findByOwnerAndHash(db, actor.userId, sha256);
        if (!winner) throw new ConflictError('The upload conflicted with another one; try again');
        return { created: false, document: presentDocument(winner, await repository.sharesFor(db, [winner.id])) };
      }
      return { created: true, document: presentDocument(inserted, []) };
    },

    async list(
      actor: Actor,
      query: { label?: Label; tag?: string; status?: DocumentStatus; owner?: 'me'; q?: string; limit: number; cursor?: string },
    ): Promise<Page<DocumentView>> {
      const key = decodeCursor(query.cursor, { c: 'timestamp', i: 'uuid' });
      const before = key ? { createdAt: new Date(key.c), id: key.i } : undefined;
      const rows = await repository.list(db, {
        visible: metadataVisibleSql(actor),
        label: query.label,
        tag: query.tag,
        status: query.status,
        ownerId: query.owner === 'me' ? actor.userId : undefined,
        titleContains: query.q,
        before,
        limit: query.limit,
      });
      const shares = await repository.sharesFor(db, rows.slice(0, query.limit).map((row) => row.id));
      return toPage(rows, query.limit, (row) => ({ c: row.createdAt.toISOString(), i: row.id }), (row) => presentDocument(row, shares));
    },

    async get(actor: Actor, id: string): Promise<DocumentView> {
      const { row, shares } = await loadVisible(actor, id);
      return presentDocument(row, shares);
    },

    async text(actor: Actor, id: string, context: RequestContext): Promise<string> {
      const { row } = await loadReadable(actor, id);
      const content = await repository.findContent(db, id);
      if (!content?.encryptedText) throw new ConflictError(`The document's text is not available yet (status ${row.status})`);
      await recordAccess(actor, row, 'text', context);
      return fieldCipher.decrypt(content.encryptedText, documentTextAad(id));
    },

    async file(actor: Actor, id: string, context: RequestContext): Promise<{ bytes: Buffer; filename: string; mimeType: string }> {
      const { row } = await loadReadable(actor, id);
      const content = await repository.findContent(db, id);
      if (!content) throw new NotFoundError('Document');
      await recordAccess(actor, row, 'file', context);
      return { bytes: Buffer.from(fieldCipher.decrypt(content.encryptedContent, documentContentAad(id)), 'base64'), filename: row.filename, mimeType: row.mimeType };
    },

    async chunks(actor: Actor, id: string, query: { limit: number; cursor?: string }, context: RequestContext): Promise<Page<ChunkView>> {
      const { row } = await loadReadable(actor, id);
      const key = decodeCursor(query.cursor, { n: 'integer' });
      const rows = await repository.listChunks(db, id, key ? Number(key.n) : undefined, query.limit);
      await recordAccess(actor, row, 'chunks', context);
      return toPage(rows, query.limit, (chunk) => ({ n: chunk.index }), (chunk: ChunkRow) => {
        const opened = JSON.parse(fieldCipher.decrypt(chunk.encryptedContent, chunkContentAad(chunk.id))) as { text: string; heading_path: string[] };
        return {
          id: chunk.id,
          document_id: chunk.documentId,
          index: chunk.index,
          text: opened.text,
          page: chunk.page,
          heading_path: opened.heading_path,
          char_start: chunk.charStart,
          char_end: chunk.charEnd,
          token_count: chunk.tokenCount,
        };
      });
    },

    /**
     * Title, tags, visibility and raising the label apply at once. Lowering the label is a declassification:
     * `declassify` (set by the module) turns it into an approval request another person must decide.
     */
    async update(
      actor: Actor,
      id: string,
      input: { title?: string; tags?: string[]; visibility?: DocumentVisibility; label?: Label },
      context: RequestContext,
    ): Promise<{ document: DocumentView } | { approvalId: string }> {
      const { row } = await loadManageable(actor, id);
      if (input.label !== undefined && labelRank(input.label) < labelRank(row.label)) {
        if (Object.keys(input).length > 1) throw new ValidationError('Lower the label on its own: it needs an approval', [{ pointer: '/label', detail: 'a lower label cannot be combined with other changes' }]);
        const declassify = deps.declassifier?.();
        if (!declassify) throw new ConflictError('Declassification is not available');
        return declassify(actor, row, input.label, context);
      }
      const patch: Parameters<DocumentsRepository['update']>[2] = {};
      if (input.title !== undefined && input.title !== row.title) patch.title = input.title;
      if (input.tags !== undefined) patch.tags = normaliseTags(input.tags);
      if (input.visibility !== undefined && input.visibility !== row.visibility) patch.visibility = input.visibility;
      if (input.label !== undefined && input.label !== row.label) {
        patch.label = higherLabel(input.label, row.label);
        patch.labelSource = 'user';
      }
      const updated = await withTransaction(db, async (uow) => {
        const next = await repository.update(uow.tx, id, patch);
        if (!next) throw new NotFoundError('Document');
        const events: AuditEventInput[] = [];
        if (patch.label) events.push(event(actor, 'DOCUMENT_RECLASSIFIED', id, { from: row.label, to: patch.label, by: actor.userId, approval_id: null }, context));
        if (patch.visibility) events.push(event(actor, 'DOCUMENT_SHARED', id, { visibility: patch.visibility, previous_visibility: row.visibility, label: next.label }, context));
        await audit.recordMany(uow.tx, events);
        return next;
      }, deps.logger);
      return { document: presentDocument(updated, await repository.sharesFor(db, [id])) };
    },

    /** Applies an approved declassification (the approval engine's built-in calls this, once). */
    async applyDeclassification(input: { documentId: string; from: Label; to: Label; requesterId: string; approvalId: string | null; approvedBy: string[] }): Promise<DocumentView> {
      const updated = await withTransaction(db, async (uow) => {
        const current = await repository.findMetadata(uow.tx, input.documentId);
        if (!current) throw new NotFoundError('Document');
        if (current.label !== input.from) throw new ConflictError(`the document's label changed since the request (it is ${current.label} now)`);
        const next = await repository.update(uow.tx, input.documentId, { label: input.to, labelSource: 'user' });
        if (!next) throw new NotFoundError('Document');
        await audit.record(uow.tx, event(null, 'DOCUMENT_RECLASSIFIED', input.documentId, { from: input.from, to: input.to, by: input.requesterId, approved_by: input.approvedBy, approval_id: input.approvalId }, SYSTEM_CONTEXT));
        return next;
      }, deps.logger);
      return presentDocument(updated, await repository.sharesFor(db, [input.documentId]));
    },

    async findForDeclassification(id: string): Promise<DocumentMetadata | undefined> {
      return repository.findMetadata(db, id);
    },

    /** Real deletion: the row, the encrypted original and text, the chunks and their lexemes, the shares. */
    async remove(actor: Actor, id: string, context: RequestContext): Promise<void> {
      const { row } = await loadManageable(actor, id);
      await withTransaction(db, async (uow) => {
        if (!(await repository.delete(uow.tx, id))) throw new NotFoundError('Document');
        await audit.record(uow.tx, event(actor, 'DOCUMENT_DELETED', id, { label: row.label, owner_id: row.ownerId }, context));
      }, deps.logger);
    },

    async reindex(actor: Actor, id: string): Promise<DocumentView> {
      await loadManageable(actor, id);
      const restarted = await withTransaction(db, async (uow) => {
        const row = await repository.restart(uow.tx, id);
        if (!row) throw new NotFoundError('Document');
        uow.afterCommit(() => enqueueProcessing(id, row.generation));
        return row;
      }, deps.logger);
      return presentDocument(restarted, await repository.sharesFor(db, [id]));
    },

    async share(actor: Actor, id: string, target: { user_id: string } | { role: string }, context: RequestContext): Promise<ShareView> {
      const { row } = await loadManageable(actor, id);
      const userId = 'user_id' in target ? target.user_id : null;
      const role = 'role' in target ? target.role : null;
      if (role !== null && !isRole(role)) throw new ValidationError('Unknown role', [{ pointer: '/role', detail: 'is not a role' }]);
      if (userId !== null) {
        if (userId === row.ownerId) throw new ValidationError('The owner always has access', [{ pointer: '/user_id', detail: 'is the owner of the document' }]);
        if (!(await deps.userExists(userId))) throw new ValidationError('No such user', [{ pointer: '/user_id', detail: 'is not an active user' }]);
      }
      return withTransaction(db, async (uow) => {
        const share = await repository.insertShare(uow.tx, { documentId: id, userId, role, createdBy: actor.userId });
        if (!share) throw new ConflictError('The document is already shared with them');
        await audit.record(uow.tx, event(actor, 'DOCUMENT_SHARED', id, { share_id: share.id, user_id: userId, role, label: row.label }, context));
        return presentShare(share);
      }, deps.logger);
    },

    async unshare(actor: Actor, id: string, shareId: string, context: RequestContext): Promise<void> {
      const { row } = await loadManageable(actor, id);
      await withTransaction(db, async (uow) => {
        const removed = await repository.deleteShare(uow.tx, id, shareId);
        if (!removed) throw new NotFoundError('Share');
        await audit.record(uow.tx, event(actor, 'DOCUMENT_UNSHARED', id, { share_id: shareId, user_id: removed.userId, role: removed.role, label: row.label }, context));
      }, deps.logger);
    },

    /**
     * `GET /documents/{id}/access-log`: who searched, retrieved, cited, read or downloaded it, from the audit trail.
     * Its owner sees who and how (not what else those searches found); `audit:read` reads the whole trail anyway, so
     * it gets the log of any id, a deleted document's included.
     */
    async accessLog(actor: Actor, id: string, query: { limit: number; cursor?: string }): Promise<Page<AccessLogEntry>> {
      const auditor = hasPermission(actor.role, 'audit:read');
      if (!auditor) {
        const { row } = await loadVisible(actor, id);
        if (row.ownerId !== actor.userId) throw new NotFoundError('Document');
      }
      const trail = deps.accessTrail?.();
      if (!trail) return { items: [], next_cursor: null };
      const page = await trail(id, query, ACCESS_EVENT_TYPES);
      return { items: page.items.map((item) => presentAccess(item, auditor)), next_cursor: page.next_cursor };
    },
  };
}

export type DocumentsService = ReturnType<typeof createDocumentsService>;

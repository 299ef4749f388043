import { availableParallelism } from 'node:os';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createEmbeddingClient, EmbeddingConfigError, type EmbeddingClient } from '../llm/embeddings.js';
import { redactText } from '../redaction/index.js';
import { ConflictError } from '../../lib/errors.js';
import { createDeclassifyTool, DECLASSIFY_TOOL } from './documents.declassify.js';
import { createSearchDocumentsTool } from './documents.search-tool.js';
import { registerDocumentJobs } from './documents.jobs.js';
import { createDocumentsRepository } from './documents.repository.js';
import { createDocumentSearch, type DocumentSearch } from './documents.search.js';
import { documentsRoutes } from './documents.routes.js';
import { chunkContentAad, createDocumentsService, documentContentAad, documentTextAad, type DocumentsService } from './documents.service.js';
import { createVectorIndex } from './documents.vectors.js';
import { createParserPool } from './documents.worker-pool.js';

export { canReadContent, contentReadableSql } from './documents.policy.js';
export type { DocumentsService } from './documents.service.js';
export type { ContextPassage, DocumentSearch, SearchHit, SearchInput, SearchResult } from './documents.search.js';

/**
 * What other modules use (chat, MCP, the OpenAI-compatible API): the documents service and, beside it, search and
 * retrieval of passages, every call with the acting user's own rights.
 */
export type DocumentsModule = DocumentsService & DocumentSearch;

declare module 'fastify' {
  interface FastifyInstance {
    documents: DocumentsModule;
  }
}

/** How often each job-processing instance looks for documents whose processing died with a worker. */
const SWEEP_INTERVAL_MS = 60_000;
const PARSE_TIMEOUT_MS = 120_000;
const PARSER_MEMORY_MB = 512;

export const NO_EMBEDDING_MODEL_REASON = 'no embedding model is configured (EMBEDDING_MODEL): keyword search only';

/** The embedding client for EMBEDDING_MODEL, or why there is none (reported as `vector_reason`, never a crash). */
function embeddingClient(app: FastifyInstance): { client: EmbeddingClient | undefined; reason: string } {
  const modelId = app.config.documents.embeddingModel;
  if (!modelId) return { client: undefined, reason: 'no embedding model is configured (EMBEDDING_MODEL)' };
  try {
    const client = createEmbeddingClient({ modelId, providers: app.config.llm, timeoutMs: app.config.documents.embeddingTimeoutMs, batchSize: app.config.documents.embeddingBatchSize });
    return { client, reason: '' };
  } catch (error) {
    if (!(error instanceof EmbeddingConfigError)) throw error;
    app.log.warn({ model: modelId, reason: error.message }, 'EMBEDDING_MODEL cannot be used: keyword search only');
    return { client: undefined, reason: `EMBEDDING_MODEL ${modelId} cannot be used: ${error.message}` };
  }
}

/**
 * Documents: upload, extraction and chunking in worker threads, classification labels, shares. The access rule
 * lives in documents.policy.ts, used by every route (and, as SQL, by lists).
 */
export const documentsModule = fp(
  async (app) => {
    const db = app.infra.database.db;
    const embedding = embeddingClient(app);
    const vectorIndex = createVectorIndex({
      db,
      pgvector: app.infra.vectorSearch === 'available',
      client: embedding.client,
      noClientReason: embedding.reason,
      cloudMaxLabel: app.config.llm.cloudMaxLabel,
      // Cloud embedding models get redacted text under the same policy as cloud chat; a failure refuses the call.
      redactForCloud: app.config.llm.redactCloudPrompts ? async (text) => redactText(text, await app.llm.redactionPolicy()).redacted_text : undefined,
    });
    const parser = createParserPool({ size: Math.max(1, Math.min(2, availableParallelism() - 1)), timeoutMs: PARSE_TIMEOUT_MS, maxMemoryMb: PARSER_MEMORY_MB });
    const service = createDocumentsService({
      db,
      repository: createDocumentsRepository(),
      audit: app.audit,
      fieldCipher: app.fieldCipher,
      jobs: app.infra.jobs,
      parser,
      notifier: () => app.notifications,
      userExists: async (userId) => (await app.users.activeUserIds()).includes(userId),
      chunking: { chunkTokens: app.config.documents.chunkTokens, overlapTokens: app.config.documents.chunkOverlapTokens },
      zipLimits: { maxUnzippedBytes: app.config.documents.maxUnzippedBytes, maxEntries: app.config.documents.maxZipEntries },
      vectorReason: NO_EMBEDDING_MODEL_REASON,
      vectors: () => vectorIndex,
      accessTrail: () => (documentId, query, eventTypes) => app.auditTrail.queries.documentAccess(documentId, query, eventTypes),
      declassifier: () => async (actor, row, to, context) => {
        const result = await app.tools.engine.execute(actor, { name: DECLASSIFY_TOOL }, { document_id: row.id, from: row.label, to }, context);
        if (result.status === 'pending_approval') return { approvalId: result.approval_id };
        // Only a tool row reconfigured to skip approval gets here; its run refuses without an approval.
        throw new ConflictError('Declassification needs an approval; the declassify_document tool must require one');
      },
      logger: app.log,
    });
    const ranker = vectorIndex.ranker();
    const search: DocumentSearch = createDocumentSearch({ db, audit: app.audit, fieldCipher: app.fieldCipher, logQueries: app.config.auditLogPrompts, vectors: () => ranker, logger: app.log });
    app.decorate('documents', { ...service, ...search });
    const declassify = createDeclassifyTool({
      documents: service,
      approverIds: (approvalId) => app.approvals.approverIds(approvalId),
      accessOf: (userId) => app.users.accessOf(userId),
    });
    app.tools.registerBuiltin(declassify.tool);
    // Chat's `knowledge: "auto"` offers it to the model; every call searches as the user it runs for.
    app.tools.registerBuiltin(createSearchDocumentsTool({ search: (actor, input, context) => search.search(actor, input, context), accessOf: (userId) => app.users.accessOf(userId) }));
    app.approvals.registerDecisionGuard(DECLASSIFY_TOOL, declassify.guard);
    app.fieldCipher.registerEncryptedColumn({ name: 'documents.encrypted_content', table: 'documents', column: 'encrypted_content', aad: (row) => documentContentAad(row.id) });
    app.fieldCipher.registerEncryptedColumn({ name: 'documents.encrypted_text', table: 'documents', column: 'encrypted_text', aad: (row) => documentTextAad(row.id) });
    app.fieldCipher.registerEncryptedColumn({ name: 'document_chunks.encrypted_content', table: 'document_chunks', column: 'encrypted_content', aad: (row) => chunkContentAad(row.id) });
    registerDocumentJobs(app.infra.jobs, service);

    let timer: NodeJS.Timeout | undefined;
    let sweeping: Promise<void> | undefined;
    const sweep = () => {
      sweeping ??= (async () => {
        try {
          const resumed = await service.resumeStalled();
          if (resumed > 0) app.log.info({ resumed }, 'document processing resumed');
          const embedding = await service.embedPending();
          if (embedding > 0) app.log.info({ documents: embedding }, 'documents queued for embedding');
        } catch (error) {
          app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'document sweep failed');
        } finally {
          sweeping = undefined;
        }
      })();
      return sweeping;
    };
    app.addHook('onReady', async () => {
      // A changed EMBEDDING_MODEL drops the old vectors and marks every document for embedding again.
      await vectorIndex.prepare();
      if (!app.config.processJobs) return;
      await sweep();
      timer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
      timer.unref();
    });
    app.addHook('preClose', async () => {
      clearInterval(timer);
      await sweeping;
    });
    app.addHook('onClose', async () => {
      await parser.close();
    });

    app.apiV1.routes(documentsRoutes, { documents: service, search, maxBytes: app.config.documents.maxBytes });
  },
  { name: 'module-documents', dependencies: ['infra', 'auth', 'module-audit', 'module-llm', 'module-identity', 'module-notifications', 'module-vault', 'module-tools', 'module-approvals'] },
);

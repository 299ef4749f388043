import multipart from '@fastify/multipart';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { DOCUMENT_VISIBILITIES, type DocumentVisibility } from '../../db/schema/documents.js';
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError, type FieldError } from '../../lib/errors.js';
import { isLabel, type Label } from '../../lib/labels.js';
import {
  AccessLogPage,
  ChunkPage,
  CreateShareBody,
  DeclassificationAccepted,
  DocumentIdParams,
  DocumentPage,
  DocumentSchema,
  DocumentTextSchema,
  ListChunksQuery,
  ListDocumentsQuery,
  SearchBody,
  SearchResultSchema,
  MAX_TAGS,
  ShareParams,
  ShareSchema,
  TAG_MAX_LENGTH,
  TITLE_MAX_LENGTH,
  UpdateDocumentBody,
} from './documents.schemas.js';
import type { DocumentSearch } from './documents.search.js';
import type { DocumentsService, UploadInput } from './documents.service.js';

export interface DocumentsRoutesOptions {
  documents: DocumentsService;
  search: DocumentSearch;
  maxBytes: number;
}

const UPLOAD_FIELDS = new Set(['title', 'label', 'tags', 'visibility']);

/** Reads the multipart upload: one `file` part, streamed up to the limit, and the optional text fields. */
async function readUpload(request: FastifyRequest, maxBytes: number): Promise<UploadInput> {
  if (!request.isMultipart()) throw new UnsupportedMediaTypeError('Send the document as multipart/form-data with a `file` part');
  const fields: Record<string, string> = {};
  const errors: FieldError[] = [];
  let file: { filename: string; bytes: Buffer } | undefined;
  try {
    for await (const part of request.parts({ limits: { fileSize: maxBytes, files: 1, fields: 8, fieldSize: 4_096, parts: 10 } })) {
      if (part.type === 'file') {
        if (part.fieldname !== 'file') {
          errors.push({ pointer: `/${part.fieldname}`, detail: 'is not a field of an upload (the document goes in `file`)' });
          await part.toBuffer();
          continue;
        }
        file = { filename: part.filename, bytes: await part.toBuffer() };
      } else if (!UPLOAD_FIELDS.has(part.fieldname)) {
        errors.push({ pointer: `/${part.fieldname}`, detail: 'is not a field of an upload' });
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') throw new PayloadTooLargeError(`The file is larger than the limit of ${maxBytes} bytes (DOCUMENT_MAX_BYTES)`);
    if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT') throw new PayloadTooLargeError('Too many parts: send one file and at most the title, label, tags and visibility fields');
    throw error;
  }
  if (!file) errors.push({ pointer: '/file', detail: 'is required' });
  const title = fields.title?.trim();
  if (title !== undefined && (title.length === 0 || title.length > TITLE_MAX_LENGTH)) errors.push({ pointer: '/title', detail: `must be 1 to ${TITLE_MAX_LENGTH} characters` });
  let label: Label | undefined;
  if (fields.label !== undefined) {
    if (isLabel(fields.label)) label = fields.label;
    else errors.push({ pointer: '/label', detail: 'must be one of PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED' });
  }
  let visibility: DocumentVisibility | undefined;
  if (fields.visibility !== undefined) {
    if ((DOCUMENT_VISIBILITIES as readonly string[]).includes(fields.visibility)) visibility = fields.visibility as DocumentVisibility;
    else errors.push({ pointer: '/visibility', detail: 'must be private or organization' });
  }
  const tags = fields.tags === undefined ? undefined : fields.tags.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '');
  if (tags && (tags.length > MAX_TAGS || tags.some((tag) => tag.length > TAG_MAX_LENGTH))) errors.push({ pointer: '/tags', detail: `at most ${MAX_TAGS} tags of at most ${TAG_MAX_LENGTH} characters` });
  if (errors.length > 0 || !file) throw new ValidationError('The upload is invalid', errors);
  return { filename: file.filename, bytes: file.bytes, title, label, tags, visibility };
}

function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export const documentsRoutes: FastifyPluginAsyncTypebox<DocumentsRoutesOptions> = async (app, { documents, search, maxBytes }) => {
  // Scoped to these routes: nowhere else accepts multipart bodies.
  await app.register(multipart, { throwFileSizeLimit: true, limits: { fileSize: maxBytes, files: 1 } });
  const tags = ['documents'];

  app.post(
    '/documents',
    {
      schema: {
        tags,
        summary: 'Upload a document (multipart: file; optional title, label, tags, visibility); processing continues in the background',
        consumes: ['multipart/form-data'],
        response: { 200: DocumentSchema, 202: DocumentSchema },
      },
    },
    async (request, reply) => {
      const upload = await readUpload(request, maxBytes);
      const { created, document } = await documents.upload(app.requireActor(request), upload, request.requestContext);
      return reply.code(created ? 202 : 200).send(document);
    },
  );

  app.get(
    '/documents',
    { schema: { tags, summary: 'Documents the caller may see (administrators: every document’s metadata)', querystring: ListDocumentsQuery, response: { 200: DocumentPage } } },
    async (request) => documents.list(app.requireActor(request), request.query),
  );

  app.post(
    '/documents/search',
    {
      schema: {
        tags,
        summary: 'Search the passages the caller may read (keyword BM25, vector, or hybrid by reciprocal rank fusion); audited',
        body: SearchBody,
        response: { 200: SearchResultSchema },
      },
    },
    async (request) => search.search(app.requireActor(request), request.body, request.requestContext),
  );

  app.get(
    '/documents/:id/access-log',
    {
      schema: {
        tags,
        summary: 'Who searched, retrieved, cited, read or downloaded the document (owner, or audit:read), newest first',
        params: DocumentIdParams,
        querystring: ListChunksQuery,
        response: { 200: AccessLogPage },
      },
    },
    async (request) => documents.accessLog(app.requireActor(request), request.params.id, request.query),
  );

  app.get(
    '/documents/:id',
    { schema: { tags, summary: 'A document’s metadata, status and progress', params: DocumentIdParams, response: { 200: DocumentSchema } } },
    async (request) => documents.get(app.requireActor(request), request.params.id),
  );

  app.get(
    '/documents/:id/text',
    { schema: { tags, summary: 'The extracted text (audited)', params: DocumentIdParams, response: { 200: DocumentTextSchema } } },
    async (request) => ({ text: await documents.text(app.requireActor(request), request.params.id, request.requestContext) }),
  );

  app.get(
    '/documents/:id/file',
    { schema: { tags, summary: 'The original file, as uploaded (audited)', params: DocumentIdParams } },
    async (request, reply) => {
      const file = await documents.file(app.requireActor(request), request.params.id, request.requestContext);
      return reply.header('content-disposition', contentDisposition(file.filename)).header('cache-control', 'no-store').type(file.mimeType).send(file.bytes);
    },
  );

  app.get(
    '/documents/:id/chunks',
    { schema: { tags, summary: 'The indexed passages, with page, heading path and offsets (audited)', params: DocumentIdParams, querystring: ListChunksQuery, response: { 200: ChunkPage } } },
    async (request) => documents.chunks(app.requireActor(request), request.params.id, request.query, request.requestContext),
  );

  app.patch(
    '/documents/:id',
    {
      schema: {
        tags,
        summary: 'Change title, tags, visibility or raise the label; a lower label is a declassification request (202 with its approval)',
        params: DocumentIdParams,
        body: UpdateDocumentBody,
        response: { 200: DocumentSchema, 202: DeclassificationAccepted },
      },
    },
    async (request, reply) => {
      const result = await documents.update(app.requireActor(request), request.params.id, request.body, request.requestContext);
      if ('approvalId' in result) return reply.code(202).send({ approval_id: result.approvalId, status: 'pending_approval' as const });
      return result.document;
    },
  );

  app.delete(
    '/documents/:id',
    { schema: { tags, summary: 'Delete the document, its text, passages and index entries', params: DocumentIdParams, response: { 204: Type.Null() } } },
    async (request, reply) => {
      await documents.remove(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/documents/:id/reindex',
    { schema: { tags, summary: 'Extract, chunk and index the document again', params: DocumentIdParams, response: { 202: DocumentSchema } } },
    async (request, reply) => reply.code(202).send(await documents.reindex(app.requireActor(request), request.params.id)),
  );

  app.post(
    '/documents/:id/shares',
    { schema: { tags, summary: 'Share with a user or a role (their clearance still applies)', params: DocumentIdParams, body: CreateShareBody, response: { 201: ShareSchema } } },
    async (request, reply) => reply.code(201).send(await documents.share(app.requireActor(request), request.params.id, request.body, request.requestContext)),
  );

  app.delete(
    '/documents/:id/shares/:share_id',
    { schema: { tags, summary: 'Remove a share', params: ShareParams, response: { 204: Type.Null() } } },
    async (request, reply) => {
      await documents.unshare(app.requireActor(request), request.params.id, request.params.share_id, request.requestContext);
      return reply.code(204).send(null);
    },
  );
};

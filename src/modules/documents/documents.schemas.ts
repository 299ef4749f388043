import { Type, type Static } from '@sinclair/typebox';
import { DOCUMENT_STATUSES, DOCUMENT_VISIBILITIES } from '../../db/schema/documents.js';
import { ROLES } from '../../db/schema/users.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { LabelSchema, RoleSchema } from '../users/users.schemas.js';

export const TITLE_MAX_LENGTH = 300;
export const TAG_MAX_LENGTH = 64;
export const MAX_TAGS = 32;

const StatusSchema = Type.Union(DOCUMENT_STATUSES.map((status) => Type.Literal(status)));
const VisibilitySchema = Type.Union(DOCUMENT_VISIBILITIES.map((visibility) => Type.Literal(visibility)));
const TagSchema = Type.String({ minLength: 1, maxLength: TAG_MAX_LENGTH, pattern: '^[^,\\s][^,]*$' });

export const ShareSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    user_id: Type.Optional(Type.String({ format: 'uuid' })),
    role: Type.Optional(RoleSchema),
  },
  { additionalProperties: false },
);
export type ShareView = Static<typeof ShareSchema>;

export const DocumentSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    filename: Type.String(),
    mime_type: Type.String(),
    size_bytes: Type.Integer(),
    sha256: Type.String(),
    label: LabelSchema,
    label_source: Type.Union([Type.Literal('user'), Type.Literal('auto')]),
    detected: Type.Record(Type.String(), Type.Integer(), { description: 'counts per detected type (PII, secrets); never the values' }),
    tags: Type.Array(Type.String()),
    visibility: VisibilitySchema,
    owner_id: Type.String({ format: 'uuid' }),
    status: StatusSchema,
    progress: Type.Number({ minimum: 0, maximum: 1 }),
    error: Type.Union([Type.String(), Type.Null()]),
    page_count: Type.Union([Type.Integer(), Type.Null()]),
    chunk_count: Type.Integer(),
    vector_indexed: Type.Boolean(),
    vector_reason: Type.Union([Type.String(), Type.Null()]),
    shares: Type.Array(ShareSchema),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type DocumentView = Static<typeof DocumentSchema>;

export const DocumentPage = Type.Object({ items: Type.Array(DocumentSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const ChunkSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    document_id: Type.String({ format: 'uuid' }),
    index: Type.Integer(),
    text: Type.String(),
    page: Type.Union([Type.Integer(), Type.Null()]),
    heading_path: Type.Array(Type.String()),
    char_start: Type.Integer(),
    char_end: Type.Integer(),
    token_count: Type.Integer(),
  },
  { additionalProperties: false },
);
export type ChunkView = Static<typeof ChunkSchema>;
export const ChunkPage = Type.Object({ items: Type.Array(ChunkSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const DocumentIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
export const ShareParams = Type.Object({ id: Type.String({ format: 'uuid' }), share_id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const ListDocumentsQuery = Type.Object(
  {
    label: Type.Optional(LabelSchema),
    tag: Type.Optional(TagSchema),
    status: Type.Optional(StatusSchema),
    owner: Type.Optional(Type.Literal('me')),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'substring of the title' })),
    limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ListChunksQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const UpdateDocumentBody = Type.Object(
  {
    title: Type.Optional(Type.String({ minLength: 1, maxLength: TITLE_MAX_LENGTH })),
    tags: Type.Optional(Type.Array(TagSchema, { maxItems: MAX_TAGS, uniqueItems: true })),
    visibility: Type.Optional(VisibilitySchema),
    label: Type.Optional(LabelSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const DeclassificationAccepted = Type.Object({ approval_id: Type.String({ format: 'uuid' }), status: Type.Literal('pending_approval') });

export const CreateShareBody = Type.Union(
  [
    Type.Object({ user_id: Type.String({ format: 'uuid' }) }, { additionalProperties: false }),
    Type.Object({ role: Type.Union(ROLES.map((role) => Type.Literal(role))) }, { additionalProperties: false }),
  ],
  { description: 'a user, or every holder of a role' },
);

export const DocumentTextSchema = Type.Object({ text: Type.String() }, { additionalProperties: false });

export const AccessLogEntrySchema = Type.Object(
  {
    event_id: Type.String({ format: 'uuid' }),
    seq: Type.Integer(),
    event_type: Type.String(),
    action: Type.Union([Type.Literal('searched'), Type.Literal('retrieved'), Type.Literal('cited'), Type.Literal('read'), Type.Literal('downloaded')]),
    user_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    session_id: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'the whole event’s details; for audit:read only' })),
  },
  { additionalProperties: false },
);
export type AccessLogEntry = Static<typeof AccessLogEntrySchema>;
export const AccessLogPage = Type.Object({ items: Type.Array(AccessLogEntrySchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const SEARCH_QUERY_MAX_LENGTH = 2_000;
const MAX_FILTER_ITEMS = 100;

export const SearchBody = Type.Object(
  {
    query: Type.String({ minLength: 1, maxLength: SEARCH_QUERY_MAX_LENGTH, pattern: '\\S' }),
    mode: Type.Optional(Type.Union([Type.Literal('hybrid'), Type.Literal('keyword'), Type.Literal('vector')], { description: 'default: hybrid when vector search is available, else keyword' })),
    top_k: Type.Integer({ minimum: 1, maximum: 50, default: 8 }),
    filters: Type.Optional(
      Type.Object(
        {
          document_ids: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: MAX_FILTER_ITEMS })),
          tags: Type.Optional(Type.Array(TagSchema, { maxItems: MAX_TAGS, description: 'documents with any of these tags' })),
          labels: Type.Optional(Type.Array(LabelSchema, { maxItems: 4 })),
          owner_id: Type.Optional(Type.String({ format: 'uuid' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const HighlightSchema = Type.Object({ start: Type.Integer(), end: Type.Integer() }, { additionalProperties: false, description: 'a matched word, as UTF-16 offsets into `text`' });

export const SearchHitSchema = Type.Object(
  {
    chunk_id: Type.String({ format: 'uuid' }),
    document_id: Type.String({ format: 'uuid' }),
    document_title: Type.String(),
    label: LabelSchema,
    page: Type.Union([Type.Integer(), Type.Null()]),
    heading_path: Type.Array(Type.String()),
    text: Type.String(),
    highlights: Type.Array(HighlightSchema),
    score: Type.Number({ description: 'BM25 (keyword), cosine similarity (vector) or the reciprocal-rank-fusion score (hybrid)' }),
    scores: Type.Object({ keyword: Type.Optional(Type.Number()), vector: Type.Optional(Type.Number()) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const SearchResultSchema = Type.Object(
  {
    items: Type.Array(SearchHitSchema),
    mode_used: Type.Union([Type.Literal('hybrid'), Type.Literal('keyword'), Type.Literal('vector')]),
    mode_reason: Type.Union([Type.String(), Type.Null()], { description: 'why the mode asked for was not used (vector search unavailable), else null' }),
    took_ms: Type.Number(),
  },
  { additionalProperties: false },
);

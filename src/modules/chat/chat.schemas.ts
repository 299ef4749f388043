import { Type, type Static } from '@sinclair/typebox';
import { MultiLineText } from '../../lib/text-formats.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { LABELS } from '../../lib/labels.js';
import { MAX_PINNED_DOCUMENTS } from './knowledge.js';

/** Longest chat message in characters; the model's context window may allow less (422 then too). */
export const MAX_MESSAGE_LENGTH = 100_000;

export const StreamBody = Type.Object(
  {
    message: MultiLineText({ minLength: 1, maxLength: MAX_MESSAGE_LENGTH, pattern: '\\S' }),
    session_id: Type.Optional(Type.String({ format: 'uuid', description: 'Continue this session; omit to start one' })),
    model: Type.Optional(
      Type.String({ minLength: 3, maxLength: 300, pattern: '^[a-z]+/\\S', description: '`provider/model`; default: the session\'s, then the configured one' }),
    ),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    tools: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('none')], { default: 'auto', description: '`none`: offer the model no tools' }),
    ),
    document_ids: Type.Optional(
      Type.Array(Type.String({ format: 'uuid' }), {
        maxItems: MAX_PINNED_DOCUMENTS,
        description: 'Documents to pin to the session as context (each must be readable by the caller, else 404); they stay pinned for later turns',
      }),
    ),
    knowledge: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('none')], {
        default: 'auto',
        description: "`auto`: offer the model the built-in search_documents tool (the caller's own clearance); `none`: do not",
      }),
    ),
  },
  { additionalProperties: false },
);
export type StreamBody = Static<typeof StreamBody>;

export const ContinueBody = Type.Object(
  {
    session_id: Type.String({ format: 'uuid' }),
    approval_id: Type.String({ format: 'uuid' }),
  },
  { additionalProperties: false },
);
export type ContinueBody = Static<typeof ContinueBody>;

export const SessionParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const ListSessionsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ExportQuery = Type.Object(
  { format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('markdown')], { default: 'json' })) },
  { additionalProperties: false },
);

const Usage = Type.Object(
  { input_tokens: Type.Union([Type.Integer(), Type.Null()]), output_tokens: Type.Union([Type.Integer(), Type.Null()]) },
  { additionalProperties: false },
);

const LabelSchema = Type.Union(LABELS.map((label) => Type.Literal(label)));

export const CitationSchema = Type.Object(
  {
    n: Type.Integer({ minimum: 1, description: 'The number the answer cites as `[n]`' }),
    document_id: Type.String({ format: 'uuid' }),
    chunk_id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    page: Type.Union([Type.Integer(), Type.Null()]),
    label: LabelSchema,
  },
  { additionalProperties: false },
);

const ToolCall = Type.Object(
  {
    tool_call_id: Type.String(),
    tool: Type.String(),
    args: Type.Record(Type.String(), Type.Unknown()),
    approval_id: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const MessageSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    role: Type.Union([Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
    content: Type.String({ description: 'For a tool message, the JSON outcome `{status, result?, error?}` as text' }),
    status: Type.Union([
      Type.Literal('completed'),
      Type.Literal('interrupted'),
      Type.Literal('error'),
      Type.Literal('awaiting_approval'),
    ]),
    model: Type.Union([Type.String(), Type.Null()]),
    usage: Type.Union([Usage, Type.Null()]),
    tool_calls: Type.Union([Type.Array(ToolCall), Type.Null()]),
    tool_call_id: Type.Union([Type.String(), Type.Null()]),
    tool_name: Type.Union([Type.String(), Type.Null()]),
    label: Type.Union([LabelSchema, Type.Null()], {
      description: "Assistant: the session's label when the model was called; tool: the highest label of the passages it brought",
    }),
    routed_to: Type.Union([Type.String(), Type.Null()], { description: 'The local model the turn was routed to because of its label, else null' }),
    citations: Type.Union([Type.Array(CitationSchema), Type.Null()], { description: 'The passages given to the model for this answer' }),
    created_at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

const SessionLabel = Type.Union(LABELS.map((label) => Type.Literal(label)), {
  description: 'The highest label of any document content that entered the session; it never decreases',
});
const PinnedDocumentIds = Type.Array(Type.String({ format: 'uuid' }), { description: 'Documents pinned to the session' });

export const SessionSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    model: Type.String(),
    label: SessionLabel,
    pinned_document_ids: PinnedDocumentIds,
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

export const SessionPage = Type.Object(
  { items: Type.Array(SessionSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

export const SessionDetailSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    model: Type.String(),
    label: SessionLabel,
    pinned_document_ids: PinnedDocumentIds,
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    messages: Type.Array(MessageSchema),
  },
  { additionalProperties: false },
);

export const CHAT_STREAM_DESCRIPTION = [
  'A `text/event-stream`. Everything that can be refused is checked before the stream opens, and answered',
  'as an ordinary problem response: 401, 404 (another user\'s or no such session, or a `document_ids` entry the caller may not read), 409 (the session waits for an',
  'approval), 422 (invalid body, unusable model, message too long for the model), 429 (rate limit or daily token',
  'budget, with Retry-After). Then, in order:',
  '`session` `{session_id, message_id}` once the message is stored and before the model is called;',
  '`token` `{delta}` as the model writes (placeholders of redacted personal data already restored);',
  '`tool_call` `{tool_call_id, tool, args}`, then `tool_result` `{tool_call_id, tool, status, result?, error?}` or',
  '`approval_required` `{approval_id, tool_call_id, tool, args}`;',
  '`routed` `{from, to, label, reason}` when the context is above CLOUD_MAX_LABEL and the turn goes to LOCAL_FALLBACK_MODEL',
  '(with no fallback the turn is refused before anything is sent: `error` with problem type',
  '`urn:cdsa:problem:sensitivity-routing-refused`, then `done`);',
  '`citation` `{n, document_id, chunk_id, title, page, label}` for each passage put in the prompt, before any text citing `[n]`;',
  '`message` `{id, role, content, model, usage?, created_at, status, tool_calls?, citations?, label, routed_to, context_truncated?}`: the final stored',
  'assistant message (text the model wrote before a tool call is stored with that call, in its own message);',
  '`error` (a problem object) when the provider fails or times out;',
  '`done` `{status: completed|awaiting_approval|error|interrupted}`, always last.',
  'A client that disconnects aborts the provider request at once; the partial answer is stored as `interrupted`.',
].join(' ');

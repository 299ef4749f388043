import { Type, type Static } from '@sinclair/typebox';
import { MultiLineText } from '../../lib/text-formats.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';

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
    created_at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

export const SessionSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    model: Type.String(),
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
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    messages: Type.Array(MessageSchema),
  },
  { additionalProperties: false },
);

export const CHAT_STREAM_DESCRIPTION = [
  'A `text/event-stream`. Everything that can be refused is checked before the stream opens, and answered',
  'as an ordinary problem response: 401, 404 (another user\'s or no such session), 409 (the session waits for an',
  'approval), 422 (invalid body, unusable model, message too long for the model), 429 (rate limit or daily token',
  'budget, with Retry-After). Then, in order:',
  '`session` `{session_id, message_id}` once the message is stored and before the model is called;',
  '`token` `{delta}` as the model writes (placeholders of redacted personal data already restored);',
  '`tool_call` `{tool_call_id, tool, args}`, then `tool_result` `{tool_call_id, tool, status, result?, error?}` or',
  '`approval_required` `{approval_id, tool_call_id, tool, args}`;',
  '`message` `{id, role, content, model, usage?, created_at, status, tool_calls?, context_truncated?}`: the final stored',
  'assistant message (text the model wrote before a tool call is stored with that call, in its own message);',
  '`error` (a problem object) when the provider fails or times out;',
  '`done` `{status: completed|awaiting_approval|error|interrupted}`, always last.',
  'A client that disconnects aborts the provider request at once; the partial answer is stored as `interrupted`.',
].join(' ');

import { Type, type Static } from '@sinclair/typebox';
import { MAX_PINNED_DOCUMENTS } from '../chat/knowledge.js';

/*
 * The OpenAI wire format of /v1 (chat completions, embeddings, models), as OpenAI's clients send and read it. Request
 * objects accept the fields OpenAI defines that CDSA does not act on (`top_p`, `user`, `seed`, ...): clients send
 * them by default, and OpenAI's own API accepts them.
 */

const ModelId = Type.String({ minLength: 1, maxLength: 300, description: "A CDSA model id, `provider/model` (see GET /v1/models)" });

const TextPart = Type.Object(
  { type: Type.String({ description: 'Only `text` parts are supported' }), text: Type.Optional(Type.String({ maxLength: 1_000_000 })) },
  { additionalProperties: true },
);

// Null first: with type coercion on, a null would otherwise be coerced into the first branch's type.
const Content = Type.Union([Type.Null(), Type.String({ maxLength: 1_000_000 }), Type.Array(TextPart, { maxItems: 256 })]);

const ToolCall = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 200 }),
    type: Type.Optional(Type.Literal('function')),
    function: Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }), arguments: Type.String({ maxLength: 1_000_000 }) }, { additionalProperties: true }),
  },
  { additionalProperties: true },
);

export const ChatMessageSchema = Type.Object(
  {
    role: Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
    content: Type.Optional(Content),
    name: Type.Optional(Type.String({ maxLength: 64 })),
    tool_calls: Type.Optional(Type.Array(ToolCall, { maxItems: 128 })),
    tool_call_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: true },
);
export type ChatMessageInput = Static<typeof ChatMessageSchema>;

const FunctionTool = Type.Object(
  {
    type: Type.Literal('function'),
    function: Type.Object(
      {
        name: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$', description: 'As OpenAI allows: letters, digits, `_` and `-`, at most 64' }),
        description: Type.Optional(Type.String({ maxLength: 8192 })),
        parameters: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'JSON Schema of the arguments object' })),
        strict: Type.Optional(Type.Union([Type.Null(), Type.Boolean()])),
      },
      { additionalProperties: true },
    ),
  },
  { additionalProperties: true },
);

const ResponseFormat = Type.Union([
  Type.Object({ type: Type.Literal('text') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('json_object') }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('json_schema'),
      json_schema: Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 64 }),
          description: Type.Optional(Type.String({ maxLength: 8192 })),
          schema: Type.Optional(Type.Object({}, { additionalProperties: true })),
          strict: Type.Optional(Type.Union([Type.Null(), Type.Boolean()])),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
]);

export const CdsaExtension = Type.Object(
  {
    document_ids: Type.Optional(
      Type.Array(Type.String({ format: 'uuid' }), {
        uniqueItems: true,
        maxItems: MAX_PINNED_DOCUMENTS,
        description: "Documents to ground the answer in, read with the key owner's clearance (404 for one they may not read)",
      }),
    ),
    knowledge: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('none')], {
        description: "`auto`: the model may search the key owner's documents (search_documents, run by CDSA); `none` (default): it may not",
      }),
    ),
  },
  { additionalProperties: false, description: 'CDSA extension: grounding in documents. Citations come back in `cdsa.citations`.' },
);

export const ChatCompletionBody = Type.Object(
  {
    model: ModelId,
    messages: Type.Array(ChatMessageSchema, { minItems: 1, maxItems: 2048 }),
    stream: Type.Optional(Type.Union([Type.Null(), Type.Boolean()])),
    stream_options: Type.Optional(Type.Union([Type.Null(), Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: true })])),
    temperature: Type.Optional(Type.Union([Type.Null(), Type.Number({ minimum: 0, maximum: 2 })])),
    max_tokens: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 1_000_000 })])),
    max_completion_tokens: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 1_000_000 })])),
    n: Type.Optional(Type.Union([Type.Null(), Type.Literal(1, { description: 'Only one choice is generated' })])),
    tools: Type.Optional(Type.Array(FunctionTool, { maxItems: 128 })),
    tool_choice: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('none'), Type.Literal('required'), Type.Object({}, { additionalProperties: true })], {
        description: '`none` offers no tools; anything else lets the model decide (`auto`)',
      }),
    ),
    response_format: Type.Optional(ResponseFormat),
    cdsa: Type.Optional(CdsaExtension),
  },
  { additionalProperties: true },
);
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

export const EmbeddingsBody = Type.Object(
  {
    model: ModelId,
    input: Type.Union([Type.String({ minLength: 1, maxLength: 1_000_000 }), Type.Array(Type.String({ minLength: 1, maxLength: 1_000_000 }), { minItems: 1, maxItems: 2048 })], {
      description: 'Text, or a list of texts (token arrays are not accepted: their PII could not be redacted)',
    }),
    encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type EmbeddingsBody = Static<typeof EmbeddingsBody>;

// Responses (documentation and serialisation) ---------------------------------------------------------------------

const Citation = Type.Object(
  {
    n: Type.Integer(),
    document_id: Type.String(),
    chunk_id: Type.String(),
    title: Type.String(),
    page: Type.Union([Type.Integer(), Type.Null()]),
    label: Type.String(),
  },
  { additionalProperties: false },
);

export const CdsaResult = Type.Object(
  {
    citations: Type.Array(Citation, { description: 'The passages given to the model; `[n]` in the text cites passage n' }),
    label: Type.String({ description: 'The highest label of the documents the answer is grounded in' }),
    routed_to: Type.Union([Type.String(), Type.Null()], { description: 'The local model sensitivity routing sent the request to, if any' }),
  },
  { additionalProperties: false },
);

const Usage = Type.Object(
  { prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() },
  { additionalProperties: false },
);

const ResponseToolCall = Type.Object(
  {
    id: Type.String(),
    type: Type.Literal('function'),
    function: Type.Object({ name: Type.String(), arguments: Type.String({ description: 'JSON, with any redacted values restored' }) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const ChatCompletionSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('chat.completion'),
    created: Type.Integer(),
    model: Type.String(),
    choices: Type.Array(
      Type.Object(
        {
          index: Type.Integer(),
          message: Type.Object(
            {
              role: Type.Literal('assistant'),
              content: Type.Union([Type.String(), Type.Null()]),
              refusal: Type.Null(),
              tool_calls: Type.Optional(Type.Array(ResponseToolCall)),
            },
            { additionalProperties: false },
          ),
          logprobs: Type.Null(),
          finish_reason: Type.Union([Type.Literal('stop'), Type.Literal('tool_calls'), Type.Literal('length')]),
        },
        { additionalProperties: false },
      ),
    ),
    usage: Usage,
    cdsa: Type.Optional(CdsaResult),
  },
  { additionalProperties: false, description: 'With `stream: true`: `text/event-stream` of `chat.completion.chunk` objects, then `data: [DONE]`' },
);

export const ModelList = Type.Object(
  {
    object: Type.Literal('list'),
    data: Type.Array(
      Type.Object(
        { id: Type.String(), object: Type.Literal('model'), created: Type.Integer(), owned_by: Type.String() },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const EmbeddingList = Type.Object(
  {
    object: Type.Literal('list'),
    data: Type.Array(
      Type.Object(
        {
          object: Type.Literal('embedding'),
          index: Type.Integer(),
          embedding: Type.Union([Type.Array(Type.Number()), Type.String({ description: 'base64 of little-endian float32 values' })]),
        },
        { additionalProperties: false },
      ),
    ),
    model: Type.String(),
    usage: Type.Object({ prompt_tokens: Type.Integer(), total_tokens: Type.Integer() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const OpenAiErrorSchema = Type.Object(
  {
    error: Type.Object(
      {
        message: Type.String(),
        type: Type.String({ description: 'invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error, insufficient_quota, api_error' }),
        param: Type.Union([Type.String(), Type.Null()]),
        code: Type.Union([Type.String(), Type.Null()]),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: "OpenAI's error shape (not RFC 9457): what OpenAI clients parse" },
);

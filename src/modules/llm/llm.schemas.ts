import { Type, type Static } from '@sinclair/typebox';
import { SingleLineText } from '../../lib/text-formats.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { ROLES } from '../../db/schema/users.js';
import { PII_TYPES } from '../redaction/types.js';
import { PROVIDER_NAMES } from './providers/index.js';
import { CLOUD_MAX_LABELS } from './sensitivity-routing.js';

const ProviderName = Type.Union(
  PROVIDER_NAMES.map((name) => Type.Literal(name)),
  { description: 'An LLM provider' },
);

const ModelId = Type.String({
  minLength: 3,
  maxLength: 300,
  pattern: '^[a-z]+/\\S',
  description: '`provider/model`, e.g. `ollama/llama3.1:8b` or `openai/gpt-4o-mini`',
});

export const ModelConfigSchema = Type.Object(
  {
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2, description: 'Default temperature for chat on this model' })),
    max_output_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Longest answer' })),
  },
  { additionalProperties: false },
);

export const LlmModelSchema = Type.Object(
  {
    id: Type.String({ description: '`provider/model`' }),
    provider: ProviderName,
    name: Type.String(),
    is_local: Type.Boolean({ description: 'Prompts stay on-premises; cloud models get redacted prompts' }),
    context_window: Type.Union([Type.Integer(), Type.Null()], { description: 'Tokens; null when unknown' }),
    is_enabled: Type.Boolean(),
    registered: Type.Boolean({ description: 'An administrator registered or configured it' }),
    discovered: Type.Boolean({ description: 'Its provider lists it' }),
    config: ModelConfigSchema,
  },
  { additionalProperties: false },
);

export const LlmModelPage = Type.Object(
  { items: Type.Array(LlmModelSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

export const ListModelsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** Model ids contain `/`: one path parameter, URL-encoded (`/llm/models/ollama%2Fllama3.1%3A8b`). */
export const ModelIdParams = Type.Object({
  id: Type.String({
    minLength: 1,
    maxLength: 300,
    description: 'The model id, `provider/model`, URL-encoded as one path segment (`/` as `%2F`)',
    examples: ['ollama/llama3.1:8b'],
  }),
});

/** The same id written as the rest of the path (`/llm/models/openai/gpt-4o-mini`); kept for clients that do so. */
export const ModelRestOfPathParams = Type.Object({ '*': Type.String() });

export const SaveModelBody = Type.Object(
  {
    id: ModelId,
    name: Type.Optional(SingleLineText({ minLength: 1, maxLength: 200 })),
    context_window: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 100_000_000 }), Type.Null()])),
    is_enabled: Type.Optional(Type.Boolean()),
    config: Type.Optional(ModelConfigSchema),
  },
  { additionalProperties: false },
);
export type SaveModelBody = Static<typeof SaveModelBody>;

export const ModelTestResultSchema = Type.Object(
  {
    ok: Type.Boolean(),
    latency_ms: Type.Integer({ description: 'Until the answer was complete' }),
    first_token_ms: Type.Union([Type.Integer(), Type.Null()], { description: 'Until the first token; null if none came' }),
    detail: Type.String(),
  },
  { additionalProperties: false },
);

const RoleName = Type.Union(ROLES.map((role) => Type.Literal(role)));

const ModelAccessMap = Type.Record(Type.String({ minLength: 3, maxLength: 300, pattern: '^[a-z]+/\\S' }), Type.Array(RoleName, { uniqueItems: true, maxItems: 3 }), {
  description:
    'Model id → the roles that may use it, on /api/v1/chat and on the OpenAI-compatible /v1 alike; a model not named is open to every role ' +
    '(an empty list closes it to everyone)',
  maxProperties: 500,
});

const PiiTypeName = Type.Union(PII_TYPES.map((t) => Type.Literal(t)));

export const LlmConfigSchema = Type.Object(
  {
    default_model: Type.Union([Type.String(), Type.Null()], { description: 'null: LLM_DEFAULT_MODEL, else the first available' }),
    temperature: Type.Union([Type.Number(), Type.Null()]),
    max_context_tokens: Type.Union([Type.Integer(), Type.Null()], { description: "null: the model's own window" }),
    providers_with_stored_keys: Type.Array(ProviderName),
    redaction: Type.Object(
      {
        redact_types: Type.Array(PiiTypeName, { description: 'Replaced by placeholders before text goes to a cloud model (REDACTION_TYPES)' }),
        label_types: Type.Array(PiiTypeName, { description: "Raise a document's label when found in it (REDACTION_LABEL_TYPES)" }),
        time_budget_ms: Type.Integer({ description: 'Past this, a text is refused rather than sent unredacted (REDACTION_TIME_BUDGET_MS)' }),
      },
      { additionalProperties: false },
    ),
    model_access: ModelAccessMap,
    routing: Type.Object(
      {
        cloud_max_label: Type.Union(CLOUD_MAX_LABELS.map((label) => Type.Literal(label)), {
          description: 'The highest label of content a cloud model may receive (CLOUD_MAX_LABEL); set in the environment',
        }),
        local_fallback_model: Type.Union([Type.String(), Type.Null()], {
          description: 'Where turns above it go (LOCAL_FALLBACK_MODEL); null: they are refused. Set in the environment',
        }),
      },
      { additionalProperties: false, description: 'Sensitivity routing as this instance applies it (read-only)' },
    ),
    updated_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);

export const UpdateConfigBody = Type.Object(
  {
    default_model: Type.Optional(Type.Union([ModelId, Type.Null()])),
    temperature: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 2 }), Type.Null()])),
    max_context_tokens: Type.Optional(Type.Union([Type.Integer({ minimum: 256, maximum: 100_000_000 }), Type.Null()])),
    redact_types: Type.Optional(
      Type.Union([Type.Array(PiiTypeName, { uniqueItems: true, maxItems: 64 }), Type.Null()], { description: 'null: back to REDACTION_TYPES' }),
    ),
    label_types: Type.Optional(
      Type.Union([Type.Array(PiiTypeName, { uniqueItems: true, maxItems: 64 }), Type.Null()], { description: 'null: back to REDACTION_LABEL_TYPES' }),
    ),
    model_access: Type.Optional(
      Type.Union([ModelAccessMap, Type.Null()], { description: 'Replaces the whole map; null or {}: every model open to every role' }),
    ),
  },
  { additionalProperties: false },
);
export type UpdateConfigBody = Static<typeof UpdateConfigBody>;

const ProviderStatusSchema = Type.Object(
  {
    reachable: Type.Boolean(),
    latency_ms: Type.Union([Type.Integer(), Type.Null()]),
    models: Type.Array(Type.String(), { description: 'Model ids the provider lists' }),
    is_local: Type.Boolean(),
    detail: Type.Union([Type.String(), Type.Null()], { description: 'Why it is unreachable' }),
  },
  { additionalProperties: false },
);

export const LlmStatusSchema = Type.Record(Type.String(), ProviderStatusSchema, {
  description: 'One entry per configured provider, keyed by its name',
});

export const ProviderParams = Type.Object({ provider: ProviderName }, { additionalProperties: false });

export const ProviderKeyBody = Type.Object(
  { api_key: SingleLineText({ minLength: 1, maxLength: 4096 }) },
  { additionalProperties: false },
);

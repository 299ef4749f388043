import { Type, type Static } from '@sinclair/typebox';
import { API_KEY_SCOPES } from '../../db/schema/api-keys.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { SingleLineText } from '../../lib/text-formats.js';
import { DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS } from './api-keys.service.js';

export const ApiKeyScopeSchema = Type.Union(
  API_KEY_SCOPES.map((scope) => Type.Literal(scope)),
  { description: '`chat` and `embeddings`: the OpenAI-compatible /v1; `mcp`: POST /mcp; `documents:read`: document tools over MCP' },
);

export const CreateApiKeyBody = Type.Object(
  {
    name: SingleLineText({ minLength: 1, maxLength: 100, pattern: '\\S' }),
    scopes: Type.Array(ApiKeyScopeSchema, { minItems: 1, maxItems: API_KEY_SCOPES.length, uniqueItems: true }),
    expires_in_days: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EXPIRY_DAYS, default: DEFAULT_EXPIRY_DAYS, description: `at most ${MAX_EXPIRY_DAYS}; default ${DEFAULT_EXPIRY_DAYS}` }),
    ),
  },
  { additionalProperties: false },
);
export type CreateApiKeyBody = Static<typeof CreateApiKeyBody>;

export const ListApiKeysQuery = Type.Object(
  {
    user_id: Type.Optional(Type.String({ format: 'uuid', description: "another user's keys (users:manage)" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ApiKeyParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

const apiKeyFields = {
  id: Type.String({ format: 'uuid' }),
  user_id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  prefix: Type.String({ description: 'the first characters of the key, to recognise it' }),
  scopes: Type.Array(ApiKeyScopeSchema),
  expires_at: Type.String({ format: 'date-time' }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'updated at most once a minute' }),
};

export const ApiKeySchema = Type.Object(apiKeyFields, { additionalProperties: false });

export const CreatedApiKeySchema = Type.Object(
  { ...apiKeyFields, key: Type.String({ description: 'the key itself: shown in this response only' }) },
  { additionalProperties: false },
);

export const ApiKeyPage = Type.Object(
  { items: Type.Array(ApiKeySchema), next_cursor: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

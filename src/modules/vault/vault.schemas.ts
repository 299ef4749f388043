import { Type } from '@sinclair/typebox';
import { MultiLineText } from '../../lib/text-formats.js';
import { MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { SECRET_DESCRIPTION_MAX_LENGTH, SECRET_NAME_PATTERN, SECRET_VALUE_MAX_LENGTH } from './vault.service.js';

const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const Uuid = Type.String({ format: 'uuid' });

export const SecretNameSchema = Type.String({
  pattern: SECRET_NAME_PATTERN,
  minLength: 1,
  maxLength: 128,
  description: 'unique among live secrets; letters, digits, ".", "_" and "-"',
});
const SecretValueSchema = Type.String({ minLength: 1, maxLength: SECRET_VALUE_MAX_LENGTH, description: 'stored encrypted, never logged' });
const DescriptionSchema = Type.Union([MultiLineText({ maxLength: SECRET_DESCRIPTION_MAX_LENGTH }), Type.Null()]);

export const CreateSecretBody = Type.Object(
  { name: SecretNameSchema, value: SecretValueSchema, description: Type.Optional(DescriptionSchema) },
  { additionalProperties: false },
);

export const UpdateSecretBody = Type.Object(
  { value: Type.Optional(SecretValueSchema), description: Type.Optional(DescriptionSchema) },
  { additionalProperties: false, minProperties: 1, description: 'a new value makes a new version; older versions are kept' },
);

export const SecretIdParams = Type.Object({ id: Uuid });
export const SecretVersionParams = Type.Object({ id: Uuid, version: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }) });

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const SecretSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  version: Type.Integer({ description: 'the current version' }),
  created_by: Type.Union([Uuid, Type.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
  last_accessed_at: NullableTimestamp,
});

export const RevealedSecretSchema = Type.Object({
  ...SecretSchema.properties,
  value: Type.String({ description: 'the current version’s value' }),
});

export const SecretPage = Type.Object({ items: Type.Array(SecretSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const SecretVersionSchema = Type.Object({
  version: Type.Integer(),
  is_current: Type.Boolean(),
  created_by: Type.Union([Uuid, Type.Null()]),
  created_at: Timestamp,
});

export const SecretVersionPage = Type.Object({
  items: Type.Array(SecretVersionSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

export const RevealedSecretVersionSchema = Type.Object({
  secret_id: Uuid,
  ...SecretVersionSchema.properties,
  value: Type.String(),
});

export const RotateResponse = Type.Object({
  rotated: Type.Integer({ description: 'stored values rewrapped to the active key by this run (secret versions and encrypted columns)' }),
  key_id: Type.String({ description: 'the active key id' }),
});

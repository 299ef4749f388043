import { Type } from '@sinclair/typebox';
import { TOOL_IMPLEMENTATION_TYPES } from '../../db/schema/tools.js';
import { MultiLineText, SingleLineText } from '../../lib/text-formats.js';
import { MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { MAX_EGRESS_TIMEOUT_MS, MAX_RESPONSE_BYTES_LIMIT } from './egress.js';
import { MAX_APPROVALS_REQUIRED, MAX_CACHE_TTL_SECONDS, TOOL_DESCRIPTION_MAX_LENGTH, TOOL_NAME_PATTERN } from './tools.service.js';

const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const Uuid = Type.String({ format: 'uuid' });
const Role = Type.Union([Type.Literal('ANALYST'), Type.Literal('MANAGER'), Type.Literal('ADMIN')]);
const ApproverRole = Type.Union([Type.Literal('MANAGER'), Type.Literal('ADMIN')]);
const JsonSchemaDocument = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON Schema document' });
const NullableJsonSchema = Type.Union([JsonSchemaDocument, Type.Null()]);

export const ImplementationSchema = Type.Object(
  {
    type: Type.Union(TOOL_IMPLEMENTATION_TYPES.map((type) => Type.Literal(type))),
    builtin: Type.Optional(SingleLineText({ maxLength: 64, description: 'builtin: redact_text, http_request, …' })),
    url: Type.Optional(SingleLineText({ maxLength: 2048, description: 'webhook: called with POST; its host must be in TOOL_HTTP_ALLOWLIST' })),
    secret_name: Type.Optional(
      SingleLineText({ maxLength: 128, description: 'a vault secret: the webhook HMAC key, or the http_request auth header value' }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String(), SingleLineText({ maxLength: 2048 }), { description: 'webhook: static, non-secret request headers' }),
    ),
    auth_header: Type.Optional(SingleLineText({ maxLength: 64, description: 'http_request: header carrying the secret (default Authorization)' })),
    auth_scheme: Type.Optional(SingleLineText({ maxLength: 32, description: 'http_request: prefix of the secret (default Bearer; empty for none)' })),
    server_id: Type.Optional(Type.String({ format: 'uuid', description: 'mcp: the MCP server the tool was discovered on' })),
    tool: Type.Optional(SingleLineText({ maxLength: 128, description: 'mcp: the tool’s name on its MCP server' })),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: MAX_EGRESS_TIMEOUT_MS })),
    max_response_bytes: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_RESPONSE_BYTES_LIMIT })),
  },
  { additionalProperties: false },
);

const toolFields = {
  name: Type.String({ pattern: TOOL_NAME_PATTERN, description: 'unique; what the model calls it' }),
  description: MultiLineText({ maxLength: TOOL_DESCRIPTION_MAX_LENGTH }),
  input_schema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema (type object) of the arguments; a built-in’s own by default' }),
  output_schema: Type.Union([JsonSchemaDocument, Type.Null()], { description: 'results must match it; a built-in’s own by default' }),
  required_role: Role,
  requires_approval: Type.Boolean(),
  approval_when: Type.Union([JsonSchemaDocument, Type.Null()], { description: 'when the arguments match this schema, the call needs approval' }),
  approvals_required: Type.Integer({ minimum: 1, maximum: MAX_APPROVALS_REQUIRED, description: 'quorum of distinct approvers' }),
  approver_role: ApproverRole,
  cache_ttl_seconds: Type.Union([Type.Integer({ minimum: 1, maximum: MAX_CACHE_TTL_SECONDS }), Type.Null()], {
    description: 'seconds a result is reused for the same user and arguments; calls that need an approval are never cached',
  }),
  is_enabled: Type.Boolean(),
  implementation: ImplementationSchema,
};

/** Every field of a definition, optional: an update changes any of them, a creation defaults all but two. */
const optionalToolFields = Type.Partial(Type.Object(toolFields)).properties;

export const CreateToolBody = Type.Object(
  { ...optionalToolFields, name: toolFields.name, implementation: toolFields.implementation },
  { additionalProperties: false },
);

export const UpdateToolBody = Type.Object(optionalToolFields, {
  additionalProperties: false,
  minProperties: 1,
  description: 'the fields to change; every change makes a new version',
});

export const ToolSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Type.String(),
  input_schema: JsonSchemaDocument,
  output_schema: NullableJsonSchema,
  required_role: Role,
  requires_approval: Type.Boolean(),
  approval_when: NullableJsonSchema,
  approvals_required: Type.Integer(),
  approver_role: Role,
  cache_ttl_seconds: Type.Union([Type.Integer(), Type.Null()]),
  is_enabled: Type.Boolean(),
  implementation: ImplementationSchema,
  version: Type.Integer({ description: 'grows with every change of the definition' }),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const ToolPage = Type.Object({ items: Type.Array(ToolSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const ToolRefParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, description: 'the tool’s id or its unique name' }),
});

export const ExecutionParams = Type.Object({
  id: ToolRefParams.properties.id,
  execution_id: Uuid,
});

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ExecuteBody = Type.Object(
  { args: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'validated against the tool’s input_schema' }) },
  { additionalProperties: false },
);

export const ExecuteCompleted = Type.Object({
  execution_id: Uuid,
  status: Type.Literal('completed'),
  result: Type.Unknown(),
  cached: Type.Boolean(),
});

export const ExecutePending = Type.Object({
  execution_id: Uuid,
  status: Type.Literal('pending_approval'),
  approval_id: Uuid,
});

export const ExecutionSchema = Type.Object({
  id: Uuid,
  tool_id: Uuid,
  tool_name: Type.String(),
  status: Type.Union(
    ['pending_approval', 'running', 'completed', 'failed', 'rejected', 'expired', 'interrupted'].map((status) => Type.Literal(status)),
  ),
  source: Type.Union([Type.Literal('api'), Type.Literal('chat')]),
  user_id: Uuid,
  args: Type.Record(Type.String(), Type.Unknown()),
  result: Type.Unknown(),
  error: Type.Union([Type.String(), Type.Null()]),
  cached: Type.Boolean(),
  approval_id: Type.Union([Uuid, Type.Null()]),
  session_id: Type.Union([Uuid, Type.Null()]),
  tool_call_id: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Union([Type.Integer(), Type.Null()]),
  created_at: Timestamp,
  started_at: NullableTimestamp,
  completed_at: NullableTimestamp,
});

export const ExecutionPage = Type.Object({ items: Type.Array(ExecutionSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

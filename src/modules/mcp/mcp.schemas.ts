import { Type } from '@sinclair/typebox';
import { MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { SingleLineText } from '../../lib/text-formats.js';
import { MAX_STDIO_ARGS, MCP_SERVER_NAME_PATTERN } from './mcp.service.js';

const Timestamp = Type.String({ format: 'date-time' });
const Uuid = Type.String({ format: 'uuid' });
const Transport = Type.Union([Type.Literal('streamable_http'), Type.Literal('stdio')]);
const Url = SingleLineText({ maxLength: 2048, description: 'streamable_http: the MCP endpoint; its host must be in TOOL_HTTP_ALLOWLIST' });
const SecretName = SingleLineText({ maxLength: 128, description: 'streamable_http: a vault secret whose value is sent as the bearer token' });
const Command = SingleLineText({ maxLength: 1024, description: 'stdio: a command listed in MCP_STDIO_COMMANDS' });
const Args = Type.Array(SingleLineText({ maxLength: 1024 }), { maxItems: MAX_STDIO_ARGS, description: 'stdio: the command’s arguments' });

export const CreateMcpServerBody = Type.Object(
  {
    name: Type.String({ pattern: MCP_SERVER_NAME_PATTERN, description: 'unique; its tools are named <name>.<tool>' }),
    transport: Transport,
    url: Type.Optional(Url),
    auth_secret: Type.Optional(SecretName),
    command: Type.Optional(Command),
    args: Type.Optional(Args),
    is_enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const UpdateMcpServerBody = Type.Object(
  {
    url: Type.Optional(Url),
    auth_secret: Type.Optional(Type.Union([SecretName, Type.Null()])),
    command: Type.Optional(Command),
    args: Type.Optional(Args),
    is_enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1, description: 'the fields to change; a changed endpoint is synced again' },
);

export const McpServerSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  transport: Transport,
  url: Type.Union([Type.String(), Type.Null()]),
  command: Type.Union([Type.String(), Type.Null()]),
  args: Type.Array(Type.String()),
  auth_secret: Type.Union([Type.String(), Type.Null()], { description: 'the vault secret’s name, never its value' }),
  is_enabled: Type.Boolean(),
  status: Type.Union([Type.Literal('ok'), Type.Literal('error'), Type.Literal('disabled')], { description: 'of the last sync' }),
  protocol_version: Type.Union([Type.String(), Type.Null()], { description: 'the MCP revision agreed at the last sync' }),
  tool_count: Type.Integer(),
  last_sync_at: Type.Union([Timestamp, Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const McpServerPage = Type.Object({ items: Type.Array(McpServerSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const McpServerParams = Type.Object({ id: Uuid });

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

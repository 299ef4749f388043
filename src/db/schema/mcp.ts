import { sql } from 'drizzle-orm';
import { boolean, check, integer, jsonb, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

export const MCP_TRANSPORTS = ['streamable_http', 'stdio'] as const;
export type McpTransport = (typeof MCP_TRANSPORTS)[number];

export const MCP_SERVER_STATUSES = ['ok', 'error', 'disabled'] as const;
export type McpServerStatus = (typeof MCP_SERVER_STATUSES)[number];

/**
 * MCP servers whose tools CDSA uses. No credential is stored here: `auth_secret` names a vault secret whose value is
 * sent as the bearer token, resolved at connect time. `status`, `protocol_version`, `tool_count`, `last_sync_at` and
 * `error` describe the last discovery.
 */
export const mcpServers = pgTable(
  'mcp_servers',
  {
    id: id(),
    name: text('name').notNull(),
    transport: text('transport').$type<McpTransport>().notNull(),
    url: text('url'),
    authSecret: text('auth_secret'),
    command: text('command'),
    args: jsonb('args').$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    isEnabled: boolean('is_enabled').notNull().default(true),
    status: text('status').$type<McpServerStatus>().notNull().default('error'),
    protocolVersion: text('protocol_version'),
    toolCount: integer('tool_count').notNull().default(0),
    lastSyncAt: timestampMs('last_sync_at'),
    error: text('error'),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('mcp_servers_name_idx').on(table.name),
    check('mcp_servers_transport_check', sql`${table.transport} in ('streamable_http', 'stdio')`),
    check('mcp_servers_status_check', sql`${table.status} in ('ok', 'error', 'disabled')`),
    check(
      'mcp_servers_endpoint_check',
      sql`(${table.transport} = 'streamable_http' and ${table.url} is not null and ${table.command} is null) or (${table.transport} = 'stdio' and ${table.command} is not null and ${table.url} is null)`,
    ),
  ],
);

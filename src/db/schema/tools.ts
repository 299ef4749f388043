import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, jsonb, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users, type Role } from './users.js';

/** A JSON Schema document as stored (draft-07 / 2019-09 keywords; Ajv decides what it means). */
export type JsonSchemaDocument = Record<string, unknown>;

export const TOOL_IMPLEMENTATION_TYPES = ['builtin', 'webhook', 'mcp'] as const;
export type ToolImplementationType = (typeof TOOL_IMPLEMENTATION_TYPES)[number];

/**
 * How a tool runs. Credentials are never stored here: `secret_name` names a vault secret that is resolved
 * server-side at call time (an auth header for `http_request`, the HMAC key of a webhook).
 */
export interface ToolImplementation {
  type: ToolImplementationType;
  /** builtin: which built-in function. */
  builtin?: string;
  /** webhook: the URL called with POST; its host must be in TOOL_HTTP_ALLOWLIST. */
  url?: string;
  secret_name?: string;
  /** Static, non-secret request headers (webhook). */
  headers?: Record<string, string>;
  /** http_request: the header the vault secret is sent in (default Authorization) and its scheme (default Bearer). */
  auth_header?: string;
  auth_scheme?: string;
  /** mcp: the registered MCP server (mcp_servers.id) and the tool's name there. */
  server_id?: string;
  tool?: string;
  timeout_ms?: number;
  max_response_bytes?: number;
}

/**
 * Registered tools. `version` grows with every change, so compiled validators and cached results of an older
 * definition are never used for a newer one. Deleting is soft: executions and approvals keep their tool.
 */
export const tools = pgTable(
  'tools',
  {
    id: id(),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    inputSchema: jsonb('input_schema').$type<JsonSchemaDocument>().notNull(),
    outputSchema: jsonb('output_schema').$type<JsonSchemaDocument>(),
    requiredRole: text('required_role').$type<Role>().notNull().default('ANALYST'),
    requiresApproval: boolean('requires_approval').notNull().default(false),
    /** When these arguments match this schema, the call needs approval even if `requires_approval` is false. */
    approvalWhen: jsonb('approval_when').$type<JsonSchemaDocument>(),
    approvalsRequired: integer('approvals_required').notNull().default(1),
    approverRole: text('approver_role').$type<Role>().notNull().default('MANAGER'),
    cacheTtlSeconds: integer('cache_ttl_seconds'),
    isEnabled: boolean('is_enabled').notNull().default(true),
    implementation: jsonb('implementation').$type<ToolImplementation>().notNull(),
    version: integer('version').notNull().default(1),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deletedAt: timestampMs('deleted_at'),
  },
  (table) => [
    uniqueIndex('tools_name_live_idx').on(table.name).where(sql`${table.deletedAt} is null`),
    check('tools_required_role_check', sql`${table.requiredRole} in ('ANALYST', 'MANAGER', 'ADMIN')`),
    check('tools_approver_role_check', sql`${table.approverRole} in ('MANAGER', 'ADMIN')`),
    check('tools_approvals_required_check', sql`${table.approvalsRequired} between 1 and 10`),
    check('tools_cache_ttl_check', sql`${table.cacheTtlSeconds} is null or ${table.cacheTtlSeconds} > 0`),
  ],
);

/**
 * `interrupted`: the process running the call stopped before its outcome was stored, so whether it took effect is
 * unknown (it is never re-run by itself; see modules/tools/recovery.ts).
 */
export const TOOL_EXECUTION_STATUSES = ['pending_approval', 'running', 'completed', 'failed', 'rejected', 'expired', 'interrupted'] as const;
export type ToolExecutionStatus = (typeof TOOL_EXECUTION_STATUSES)[number];

export const TOOL_EXECUTION_SOURCES = ['api', 'chat'] as const;
export type ToolExecutionSource = (typeof TOOL_EXECUTION_SOURCES)[number];

/**
 * Every call of a tool. Arguments and result are field ciphertexts bound to the row
 * (`tool_executions:<id>:args`, `tool_executions:<id>:result`); `args_digest` is the SHA-256 of the canonical JSON
 * of the arguments. Leaving `pending_approval` is a conditional update, so a call runs at most once.
 */
export const toolExecutions = pgTable(
  'tool_executions',
  {
    id: id(),
    toolId: uuid('tool_id')
      .notNull()
      .references(() => tools.id),
    toolName: text('tool_name').notNull(),
    toolVersion: integer('tool_version').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    status: text('status').$type<ToolExecutionStatus>().notNull(),
    source: text('source').$type<ToolExecutionSource>().notNull(),
    sessionId: uuid('session_id'),
    toolCallId: text('tool_call_id'),
    approvalId: uuid('approval_id'),
    encryptedArgs: text('encrypted_args').notNull(),
    argsDigest: text('args_digest').notNull(),
    encryptedResult: text('encrypted_result'),
    error: text('error'),
    cached: boolean('cached').notNull().default(false),
    durationMs: integer('duration_ms'),
    /** The service instance (service_instances.id) running the call while it is `running`. */
    instanceId: uuid('instance_id'),
    createdAt: createdAt(),
    startedAt: timestampMs('started_at'),
    completedAt: timestampMs('completed_at'),
  },
  (table) => [
    index('tool_executions_tool_created_idx').on(table.toolId, table.createdAt, table.id),
    index('tool_executions_user_created_idx').on(table.userId, table.toolId, table.createdAt, table.id),
    index('tool_executions_running_idx').on(table.startedAt).where(sql`${table.status} = 'running'`),
    check(
      'tool_executions_status_check',
      sql`${table.status} in ('pending_approval', 'running', 'completed', 'failed', 'rejected', 'expired', 'interrupted')`,
    ),
    check('tool_executions_source_check', sql`${table.source} in ('api', 'chat')`),
  ],
);

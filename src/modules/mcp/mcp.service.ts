import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Db } from '../../db/client.js';
import type { McpTransport } from '../../db/schema/mcp.js';
import type { JsonSchemaDocument } from '../../db/schema/tools.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, type FieldError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, type Actor, type RequestContext } from '../auth/permissions.js';
import { ToolRunError } from '../tools/builtins/types.js';
import { checkEgressUrl, EgressError, MAX_EGRESS_TIMEOUT_MS, type Allowlist } from '../tools/egress.js';
import type { McpToolCall } from '../tools/executors/mcp.js';
import { createSecretScrubber } from '../tools/secret-scrub.js';
import type { ToolRegistry } from '../tools/tools.service.js';
import { TOOL_DESCRIPTION_MAX_LENGTH } from '../tools/tools.service.js';
import { SECRET_NAME_PATTERN } from '../vault/vault.service.js';
import { callMcpTool, listAllTools, withMcpSession, type ConnectOptions, type McpEndpoint } from './mcp-connection.js';
import type { McpRepository, McpServerPatch, McpServerRow } from './mcp.repository.js';

export const MCP_SERVER_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_-]{0,31}$';
const SERVER_NAME = new RegExp(MCP_SERVER_NAME_PATTERN);
const SECRET_NAME = new RegExp(SECRET_NAME_PATTERN);
const TOOL_NAME_MAX = 64;
export const MAX_STDIO_ARGS = 32;
const RESOURCE_TYPE = 'mcp_server';
const ERROR_MAX_LENGTH = 500;

export interface McpServerView {
  id: string;
  name: string;
  transport: McpTransport;
  url: string | null;
  command: string | null;
  args: string[];
  /** The name of the vault secret sent as the bearer token; never its value. */
  auth_secret: string | null;
  is_enabled: boolean;
  status: McpServerRow['status'];
  protocol_version: string | null;
  tool_count: number;
  last_sync_at: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface CreateMcpServerInput {
  name: string;
  transport: McpTransport;
  url?: string;
  auth_secret?: string;
  command?: string;
  args?: string[];
  is_enabled?: boolean;
}

export interface UpdateMcpServerInput {
  url?: string;
  auth_secret?: string | null;
  command?: string;
  args?: string[];
  is_enabled?: boolean;
}

export interface McpSecrets {
  useSecret(name: string, options?: { consumer?: string; userId?: string | null }): Promise<string>;
}

export interface McpServiceDeps {
  db: Db;
  repository: McpRepository;
  audit: Pick<AuditRecorder, 'record'>;
  tools: Pick<ToolRegistry, 'create' | 'update' | 'remove' | 'listForMcpServer'>;
  secrets: McpSecrets;
  allowlist: Allowlist;
  /** MCP_STDIO_COMMANDS */
  stdioCommands: readonly string[];
  stdio: ConnectOptions['stdio'];
  /** Deadline of a discovery (connect and list). */
  syncTimeoutMs?: number;
  logger?: { warn(obj: object, msg: string): void };
  now?: () => Date;
}

export interface SyncSummary {
  added: string[];
  updated: string[];
  removed: string[];
  skipped: { tool: string; reason: string }[];
}

function presentServer(row: McpServerRow): McpServerView {
  return {
    id: row.id,
    name: row.name,
    transport: row.transport,
    url: row.url,
    command: row.command,
    args: row.args,
    auth_secret: row.authSecret,
    is_enabled: row.isEnabled,
    status: row.isEnabled ? row.status : 'disabled',
    protocol_version: row.protocolVersion,
    tool_count: row.toolCount,
    last_sync_at: row.lastSyncAt ? row.lastSyncAt.toISOString() : null,
    error: row.error,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

function requireManage(actor: Actor): void {
  if (!hasPermission(actor.role, 'tools:manage')) throw new ForbiddenError('This action needs the tools:manage permission');
}

function truncate(text: string): string {
  return text.length > ERROR_MAX_LENGTH ? `${text.slice(0, ERROR_MAX_LENGTH)}…` : text;
}

/** `<server>.<tool>`, in the characters a CDSA tool name allows, at most 64 long. */
export function cdsaToolName(serverName: string, toolName: string): string {
  const room = TOOL_NAME_MAX - serverName.length - 1;
  return `${serverName}.${toolName.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, room)}`;
}

/** The server's input schema as a CDSA tool schema: an object schema, without a `$schema` this validator may not know. */
function inputSchemaOf(tool: Tool): JsonSchemaDocument {
  const { $schema: _ignored, ...schema } = tool.inputSchema as Record<string, unknown>;
  return { ...schema, type: 'object' };
}

function descriptionOf(tool: Tool): string {
  return (tool.description ?? tool.title ?? '').slice(0, TOOL_DESCRIPTION_MAX_LENGTH);
}

/**
 * MCP servers whose tools CDSA uses under its own approval chain. Discovery registers each server tool as a CDSA tool
 * (`<server>.<tool>`, `implementation: {type: "mcp"}`, gated and for analysts by default); a changed schema or
 * description updates the tool, which bumps its version so approvals given for the old definition no longer run.
 * Calls go through the tool engine like every other kind; this service only opens the session and makes the call.
 */
export function createMcpService(deps: McpServiceDeps) {
  const { db, repository, audit, tools, secrets, allowlist } = deps;
  const now = deps.now ?? (() => new Date());
  const syncTimeoutMs = deps.syncTimeoutMs ?? 15_000;

  function endpointErrors(transport: McpTransport, fields: { url?: string | null; command?: string | null; args?: string[]; auth_secret?: string | null }): FieldError[] {
    const errors: FieldError[] = [];
    if (transport === 'streamable_http') {
      if (fields.url === undefined || fields.url === null) {
        errors.push({ pointer: '/url', detail: 'is required for a streamable_http server' });
      } else {
        try {
          checkEgressUrl(fields.url, allowlist);
        } catch (error) {
          if (!(error instanceof EgressError)) throw error;
          errors.push({ pointer: '/url', detail: error.message });
        }
      }
      if (fields.command !== undefined && fields.command !== null) errors.push({ pointer: '/command', detail: 'is only for stdio servers' });
      if (fields.args !== undefined && fields.args.length > 0) errors.push({ pointer: '/args', detail: 'is only for stdio servers' });
    } else {
      if (fields.command === undefined || fields.command === null) {
        errors.push({ pointer: '/command', detail: 'is required for a stdio server' });
      } else if (!deps.stdioCommands.includes(fields.command)) {
        errors.push({ pointer: '/command', detail: 'is not in MCP_STDIO_COMMANDS' });
      }
      if (fields.url !== undefined && fields.url !== null) errors.push({ pointer: '/url', detail: 'is only for streamable_http servers' });
      if (fields.auth_secret !== undefined && fields.auth_secret !== null) errors.push({ pointer: '/auth_secret', detail: 'is only for streamable_http servers' });
    }
    if (fields.auth_secret !== undefined && fields.auth_secret !== null && !SECRET_NAME.test(fields.auth_secret)) {
      errors.push({ pointer: '/auth_secret', detail: 'must name a vault secret' });
    }
    return errors;
  }

  async function requireServer(id: string): Promise<McpServerRow> {
    const row = await repository.findById(db, id);
    if (!row) throw new NotFoundError('MCP server');
    return row;
  }

  function endpoint(row: McpServerRow): McpEndpoint {
    return { name: row.name, transport: row.transport, url: row.url, command: row.command, args: row.args };
  }

  function connectOptions(signal: AbortSignal, timeoutMs: number, bearerToken: string | undefined): ConnectOptions {
    return { allowlist, stdioCommands: deps.stdioCommands, stdio: deps.stdio, bearerToken, signal, timeoutMs };
  }

  /** Lists the server's tools; a failure is the server's status, never an exception (the token scrubbed from it). */
  async function discover(actor: Actor, row: McpServerRow): Promise<{ ok: true; tools: Tool[]; protocolVersion: string | null } | { ok: false; error: string }> {
    let token: string | undefined;
    try {
      if (row.authSecret !== null) token = await secrets.useSecret(row.authSecret, { consumer: `mcp:${row.name}`, userId: actor.userId });
    } catch (error) {
      if (error instanceof NotFoundError) return { ok: false, error: `the vault secret "${row.authSecret ?? ''}" does not exist` };
      throw error;
    }
    const signal = AbortSignal.timeout(syncTimeoutMs);
    try {
      return await withMcpSession(endpoint(row), connectOptions(signal, syncTimeoutMs, token), async (session) => ({
        ok: true as const,
        tools: await listAllTools(session, { signal, timeoutMs: syncTimeoutMs }),
        protocolVersion: session.protocolVersion,
      }));
    } catch (error) {
      const message = error instanceof ToolRunError ? error.message : 'the server could not be listed';
      if (!(error instanceof ToolRunError)) deps.logger?.warn({ server: row.name, err: createSecretScrubber([token]).text(error instanceof Error ? error.message : String(error)) }, 'MCP discovery failed');
      return { ok: false, error: truncate(createSecretScrubber([token]).text(message)) };
    }
  }

  /** Brings the CDSA tools of a server in line with what it lists; admins' adjustments (role, approval) are kept. */
  async function reconcile(actor: Actor, row: McpServerRow, listed: Tool[], context: RequestContext): Promise<SyncSummary> {
    const summary: SyncSummary = { added: [], updated: [], removed: [], skipped: [] };
    const current = await tools.listForMcpServer(row.id);
    const seen = new Set<string>();
    for (const remote of listed) {
      if (seen.has(remote.name)) continue;
      seen.add(remote.name);
      const existing = current.find((tool) => tool.implementation.tool === remote.name);
      const inputSchema = inputSchemaOf(remote);
      const description = descriptionOf(remote);
      try {
        if (!existing) {
          const created = await tools.create(
            actor,
            {
              name: cdsaToolName(row.name, remote.name),
              description,
              input_schema: inputSchema,
              required_role: 'ANALYST',
              requires_approval: true,
              implementation: { type: 'mcp', server_id: row.id, tool: remote.name },
            },
            context,
          );
          summary.added.push(created.name);
        } else if (canonicalJson(existing.inputSchema) !== canonicalJson(inputSchema) || existing.description !== description) {
          const updated = await tools.update(actor, { idOrName: existing.id }, { input_schema: inputSchema, description }, context);
          summary.updated.push(updated.name);
        }
      } catch (error) {
        if (!(error instanceof ValidationError) && !(error instanceof ConflictError)) throw error;
        const reason = error instanceof ValidationError ? error.errors.map((e) => `${e.pointer}: ${e.detail}`).join('; ') || error.message : error.message;
        summary.skipped.push({ tool: remote.name, reason: truncate(reason) });
      }
    }
    for (const tool of current) {
      if (tool.implementation.tool !== undefined && seen.has(tool.implementation.tool)) continue;
      await tools.remove(actor, { idOrName: tool.id }, context);
      summary.removed.push(tool.name);
    }
    return summary;
  }

  async function sync(actor: Actor, row: McpServerRow, context: RequestContext): Promise<McpServerRow> {
    const found = await discover(actor, row);
    const summary = found.ok ? await reconcile(actor, row, found.tools, context) : undefined;
    const toolCount = found.ok ? (await tools.listForMcpServer(row.id)).length : row.toolCount;
    const error = found.ok
      ? summary && summary.skipped.length > 0
        ? truncate(`some tools were not registered: ${summary.skipped.map((s) => `${s.tool} (${s.reason})`).join(', ')}`)
        : null
      : found.error;
    return withTransaction(
      db,
      async (uow) => {
        const updated = await repository.recordSync(uow.tx, row.id, {
          status: found.ok ? 'ok' : 'error',
          protocolVersion: found.ok ? found.protocolVersion : row.protocolVersion,
          toolCount,
          lastSyncAt: now(),
          error,
        });
        if (!updated) throw new NotFoundError('MCP server');
        await audit.record(uow.tx, {
          eventType: 'MCP_SERVER_SYNCED',
          userId: actor.userId,
          sessionId: actor.sessionId,
          resourceType: RESOURCE_TYPE,
          resourceId: row.id,
          details: {
            server_name: row.name,
            status: updated.status,
            protocol_version: updated.protocolVersion,
            tool_count: toolCount,
            added: summary?.added ?? [],
            updated: summary?.updated ?? [],
            removed: summary?.removed ?? [],
            skipped: summary?.skipped.map((s) => s.tool) ?? [],
            error,
          },
          context,
        });
        return updated;
      },
      deps.logger,
    );
  }

  return {
    async create(actor: Actor, input: CreateMcpServerInput, context: RequestContext): Promise<McpServerView> {
      requireManage(actor);
      const errors: FieldError[] = [];
      if (!SERVER_NAME.test(input.name)) errors.push({ pointer: '/name', detail: 'must start with a letter and hold at most 32 letters, digits, "_" or "-"' });
      errors.push(...endpointErrors(input.transport, input));
      if ((input.args?.length ?? 0) > MAX_STDIO_ARGS) errors.push({ pointer: '/args', detail: `must hold at most ${MAX_STDIO_ARGS} arguments` });
      if (errors.length > 0) throw new ValidationError('The MCP server definition is invalid', errors);
      const row = await withTransaction(
        db,
        async (uow) => {
          const inserted = await repository.insert(uow.tx, {
            name: input.name,
            transport: input.transport,
            url: input.transport === 'streamable_http' ? (input.url ?? null) : null,
            authSecret: input.auth_secret ?? null,
            command: input.transport === 'stdio' ? (input.command ?? null) : null,
            args: input.transport === 'stdio' ? (input.args ?? []) : [],
            isEnabled: input.is_enabled ?? true,
            status: input.is_enabled === false ? 'disabled' : 'error',
            error: input.is_enabled === false ? null : 'not synced yet',
            createdBy: actor.userId,
            createdAt: now(),
            updatedAt: now(),
          });
          if (!inserted) throw new ConflictError(`An MCP server named "${input.name}" already exists`);
          await audit.record(uow.tx, {
            eventType: 'MCP_SERVER_CREATED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: RESOURCE_TYPE,
            resourceId: inserted.id,
            details: {
              server_name: inserted.name,
              transport: inserted.transport,
              host: inserted.url ? new URL(inserted.url).host : null,
              command: inserted.command,
              auth_secret: inserted.authSecret,
              is_enabled: inserted.isEnabled,
            },
            context,
          });
          return inserted;
        },
        deps.logger,
      );
      return presentServer(row.isEnabled ? await sync(actor, row, context) : row);
    },

    async list(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<McpServerView>> {
      requireManage(actor);
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { name: 'string' });
      const rows = await repository.list(db, { afterName: after?.name, limit: limit + 1 });
      return toPage(rows, limit, (row) => ({ name: row.name }), presentServer);
    },

    async get(actor: Actor, id: string): Promise<McpServerView> {
      requireManage(actor);
      return presentServer(await requireServer(id));
    },

    async update(actor: Actor, id: string, input: UpdateMcpServerInput, context: RequestContext): Promise<McpServerView> {
      requireManage(actor);
      const current = await requireServer(id);
      const next = {
        url: input.url ?? current.url,
        command: input.command ?? current.command,
        args: input.args ?? current.args,
        auth_secret: input.auth_secret === undefined ? current.authSecret : input.auth_secret,
      };
      const errors = endpointErrors(current.transport, {
        url: next.url,
        command: next.command,
        args: current.transport === 'stdio' ? next.args : input.args,
        auth_secret: next.auth_secret,
      });
      if (next.args.length > MAX_STDIO_ARGS) errors.push({ pointer: '/args', detail: `must hold at most ${MAX_STDIO_ARGS} arguments` });
      if (errors.length > 0) throw new ValidationError('The MCP server definition is invalid', errors);
      const isEnabled = input.is_enabled ?? current.isEnabled;
      const patch: McpServerPatch = { url: next.url, command: next.command, args: next.args, authSecret: next.auth_secret, isEnabled };
      if (!isEnabled) patch.status = 'disabled';
      const changedFields = Object.keys(input).sort();
      const row = await withTransaction(
        db,
        async (uow) => {
          const updated = await repository.update(uow.tx, current.id, patch, now());
          if (!updated) throw new NotFoundError('MCP server');
          await audit.record(uow.tx, {
            eventType: 'MCP_SERVER_UPDATED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: RESOURCE_TYPE,
            resourceId: updated.id,
            details: { server_name: updated.name, changed_fields: changedFields, is_enabled: updated.isEnabled, auth_secret: updated.authSecret },
            context,
          });
          return updated;
        },
        deps.logger,
      );
      // A changed endpoint, or a server enabled again, is listed again at once.
      const endpointChanged = ['url', 'command', 'args', 'auth_secret'].some((field) => field in input);
      if (row.isEnabled && (endpointChanged || !current.isEnabled)) return presentServer(await sync(actor, row, context));
      return presentServer(row);
    },

    async remove(actor: Actor, id: string, context: RequestContext): Promise<void> {
      requireManage(actor);
      const current = await requireServer(id);
      // Its tools go first (each removal audited): a server is never gone while tools still point at it.
      const owned = await tools.listForMcpServer(current.id);
      for (const tool of owned) await tools.remove(actor, { idOrName: tool.id }, context);
      await withTransaction(
        db,
        async (uow) => {
          const removed = await repository.remove(uow.tx, current.id);
          if (!removed) throw new NotFoundError('MCP server');
          await audit.record(uow.tx, {
            eventType: 'MCP_SERVER_DELETED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: RESOURCE_TYPE,
            resourceId: current.id,
            details: { server_name: current.name, removed_tools: owned.map((tool) => tool.name) },
            context,
          });
        },
        deps.logger,
      );
    },

    async sync(actor: Actor, id: string, context: RequestContext): Promise<McpServerView> {
      requireManage(actor);
      const row = await requireServer(id);
      if (!row.isEnabled) throw new ConflictError(`The MCP server "${row.name}" is disabled`);
      return presentServer(await sync(actor, row, context));
    },

    /** One call of a server tool, for the tool engine's `mcp` executor (which owns deadline, scrubbing and records). */
    async callTool(call: McpToolCall): Promise<unknown> {
      const row = await repository.findById(db, call.serverId);
      if (!row) throw new ToolRunError('mcp_server_missing', 'the MCP server of this tool was removed');
      if (!row.isEnabled) throw new ToolRunError('mcp_server_disabled', `the MCP server "${row.name}" is disabled`);
      const token = row.authSecret === null ? undefined : await call.context.useSecret(row.authSecret);
      const timeoutMs = Math.min(call.timeoutMs, MAX_EGRESS_TIMEOUT_MS);
      return withMcpSession(endpoint(row), connectOptions(call.context.signal, timeoutMs, token), (session) =>
        callMcpTool(session, row, call.tool, call.args, { signal: call.context.signal, timeoutMs, maxResultBytes: call.maxResultBytes }),
      );
    },
  };
}

export type McpService = ReturnType<typeof createMcpService>;

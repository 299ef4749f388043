import type { Db, DbOrTx } from '../../db/client.js';
import type { JsonSchemaDocument, ToolImplementation } from '../../db/schema/tools.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, type FieldError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, roleAtLeast, ROLES, SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import type { NotificationContent } from '../notifications/notifications.types.js';
import { SECRET_NAME_PATTERN } from '../vault/vault.service.js';
import type { BuiltinRegistry } from './builtins/index.js';
import type { ExecutorRegistry, ImplementationDefaults } from './executors/index.js';
import { isUniqueViolation } from './db-errors.js';
import { createDefinitionCache } from './definition-cache.js';
import { MAX_EGRESS_TIMEOUT_MS, MAX_RESPONSE_BYTES_LIMIT, type Allowlist } from './egress.js';
import type { ToolSchemaValidator } from './tool-schemas.js';
import type { ToolPatch, ToolRow, ToolsRepository } from './tools.repository.js';

/** Dots separate an MCP server's name from its tool's (`<server>.<tool>`); models see them as `__` (model-names.ts). */
export const TOOL_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]{0,63}$';
const TOOL_NAME = new RegExp(TOOL_NAME_PATTERN);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
const SECRET_NAME = new RegExp(SECRET_NAME_PATTERN);
export const TOOL_DESCRIPTION_MAX_LENGTH = 2_000;
export const MAX_APPROVALS_REQUIRED = 10;
export const MAX_CACHE_TTL_SECONDS = 86_400;
const RESOURCE_TYPE = 'tool';

export interface ToolView {
  id: string;
  name: string;
  description: string;
  input_schema: JsonSchemaDocument;
  output_schema: JsonSchemaDocument | null;
  required_role: Role;
  requires_approval: boolean;
  approval_when: JsonSchemaDocument | null;
  approvals_required: number;
  approver_role: Role;
  cache_ttl_seconds: number | null;
  is_enabled: boolean;
  implementation: ToolImplementation;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface ToolInput {
  name: string;
  description?: string;
  input_schema?: JsonSchemaDocument;
  output_schema?: JsonSchemaDocument | null;
  required_role?: Role;
  requires_approval?: boolean;
  approval_when?: JsonSchemaDocument | null;
  approvals_required?: number;
  approver_role?: Role;
  cache_ttl_seconds?: number | null;
  is_enabled?: boolean;
  implementation: ToolImplementation;
}

export type ToolUpdateInput = Partial<ToolInput>;

/** How a tool is named in a URL or by the model: its id, or its unique name. */
export type ToolRef = { idOrName: string } | { name: string };

export interface ToolNotifier {
  notifyRole(role: Role, content: NotificationContent, uow?: UnitOfWork): Promise<unknown>;
}

export interface ToolRegistryDeps {
  db: Db;
  repository: ToolsRepository;
  audit: Pick<AuditRecorder, 'record'>;
  validator: ToolSchemaValidator;
  /** Built-ins are seeded at start-up; every kind's configuration is checked by its executor. */
  builtins: BuiltinRegistry;
  executors: ExecutorRegistry;
  allowlist: Allowlist;
  notifier: () => ToolNotifier | undefined;
  /** Tells the other instances that definitions changed (they drop their cached ones). */
  announceChange?: () => Promise<void>;
  /** How long a definition read for a call may be reused (0: never cached). */
  definitionCacheTtlMs?: number;
  logger?: { warn(obj: object, msg: string): void };
  now?: () => Date;
}

export function presentTool(row: ToolRow): ToolView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    input_schema: row.inputSchema,
    output_schema: row.outputSchema,
    required_role: row.requiredRole,
    requires_approval: row.requiresApproval,
    approval_when: row.approvalWhen,
    approvals_required: row.approvalsRequired,
    approver_role: row.approverRole,
    cache_ttl_seconds: row.cacheTtlSeconds,
    is_enabled: row.isEnabled,
    implementation: row.implementation,
    version: row.version,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

function rolesUpTo(role: Role): Role[] {
  return ROLES.filter((candidate) => roleAtLeast(role, candidate));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function requireManage(actor: Actor): void {
  if (!hasPermission(actor.role, 'tools:manage')) throw new ForbiddenError('This action needs the tools:manage permission');
}

/** The full definition a create or update would leave, checked as a whole (422 with pointers into the body). */
interface Candidate {
  name: string;
  description: string;
  inputSchema: JsonSchemaDocument | undefined;
  outputSchema: JsonSchemaDocument | null;
  requiredRole: Role;
  requiresApproval: boolean;
  approvalWhen: JsonSchemaDocument | null;
  approvalsRequired: number;
  approverRole: Role;
  cacheTtlSeconds: number | null;
  isEnabled: boolean;
  implementation: ToolImplementation;
}

/**
 * The tool registry: who sees which tools, and the admin operations that change them (audited, and announced to the
 * users who can use the tool). Definitions are validated as a whole: schemas must compile, a webhook's host must be
 * allowed, a built-in must exist and accept the options given.
 */
export function createToolRegistry(deps: ToolRegistryDeps) {
  const { db, repository, audit, validator, builtins, executors, allowlist } = deps;
  const now = deps.now ?? (() => new Date());
  const definitions = createDefinitionCache<ToolRow>({ ttlMs: deps.definitionCacheTtlMs ?? 0 });
  // The tool list offered to the model, per role: read on every chat turn, before the model is called.
  const usableLists = createDefinitionCache<ToolRow[]>({ ttlMs: deps.definitionCacheTtlMs ?? 0, maxEntries: 16 });

  function forgetCached(): void {
    definitions.clear();
    usableLists.clear();
  }

  /** After a change commits: this instance forgets cached definitions at once, the others when they hear of it. */
  function afterChange(uow: UnitOfWork): void {
    uow.afterCommit(async () => {
      forgetCached();
      await deps.announceChange?.().catch((error: unknown) =>
        deps.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not announce a tool change'),
      );
    });
  }

  function cacheKey(ref: ToolRef): string {
    if ('name' in ref) return `name:${ref.name}`;
    return UUID.test(ref.idOrName) ? `id:${ref.idOrName.toLowerCase()}` : `name:${ref.idOrName}`;
  }

  function findForUse(ref: ToolRef): Promise<ToolRow | undefined> {
    return definitions.getOrLoad(cacheKey(ref), () => findLive(db, ref));
  }

  function checkSchema(errors: FieldError[], pointer: string, schema: JsonSchemaDocument | null | undefined): void {
    if (schema === null || schema === undefined) return;
    const problem = validator.check(schema);
    if (problem) errors.push({ pointer, detail: `is not a valid JSON Schema: ${problem}` });
  }

  /** The kind's own checks, then the options every kind shares; returns the kind's defaults for a new definition. */
  function checkImplementation(errors: FieldError[], implementation: ToolImplementation): ImplementationDefaults {
    const base = '/implementation';
    const executor = executors.get(implementation.type);
    if (!executor) {
      errors.push({ pointer: `${base}/type`, detail: `must be one of ${executors.types().join(', ')}` });
      return {};
    }
    const kindErrors = executor.validate(implementation, { allowlist });
    errors.push(...kindErrors);
    const options = new Set(executor.options(implementation));
    for (const key of Object.keys(implementation)) {
      if (key === 'type' || options.has(key) || kindErrors.some((error) => error.pointer === `${base}/${key}`)) continue;
      errors.push({ pointer: `${base}/${key}`, detail: `is not an option of ${implementation.type} tools` });
    }
    if (implementation.secret_name !== undefined && !SECRET_NAME.test(implementation.secret_name)) {
      errors.push({ pointer: `${base}/secret_name`, detail: 'must name a vault secret' });
    }
    if (implementation.auth_header !== undefined && !HEADER_NAME.test(implementation.auth_header)) {
      errors.push({ pointer: `${base}/auth_header`, detail: 'is not a valid header name' });
    }
    if (implementation.auth_scheme !== undefined && !/^[A-Za-z0-9._-]{0,32}$/.test(implementation.auth_scheme)) {
      errors.push({ pointer: `${base}/auth_scheme`, detail: 'must be a short token such as Bearer (or empty)' });
    }
    const timeout = implementation.timeout_ms;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 100 || timeout > MAX_EGRESS_TIMEOUT_MS)) {
      errors.push({ pointer: `${base}/timeout_ms`, detail: `must be an integer between 100 and ${MAX_EGRESS_TIMEOUT_MS}` });
    }
    const size = implementation.max_response_bytes;
    if (size !== undefined && (!Number.isInteger(size) || size < 1 || size > MAX_RESPONSE_BYTES_LIMIT)) {
      errors.push({ pointer: `${base}/max_response_bytes`, detail: `must be an integer between 1 and ${MAX_RESPONSE_BYTES_LIMIT}` });
    }
    return kindErrors.length === 0 ? (executor.defaults?.(implementation) ?? {}) : {};
  }

  /** Validates a whole definition; fills a built-in's own schemas in where the admin gave none. */
  function validateCandidate(candidate: Candidate): Candidate & { inputSchema: JsonSchemaDocument } {
    const errors: FieldError[] = [];
    if (!TOOL_NAME.test(candidate.name) || UUID.test(candidate.name)) {
      errors.push({ pointer: '/name', detail: 'must start with a letter and hold at most 64 letters, digits, ".", "_" or "-" (and not look like an id)' });
    }
    if (candidate.description.length > TOOL_DESCRIPTION_MAX_LENGTH) {
      errors.push({ pointer: '/description', detail: `must be at most ${TOOL_DESCRIPTION_MAX_LENGTH} characters` });
    }
    const defaults = checkImplementation(errors, candidate.implementation);
    const inputSchema = candidate.inputSchema ?? defaults.inputSchema;
    if (inputSchema === undefined) {
      errors.push({ pointer: '/input_schema', detail: `is required for a ${candidate.implementation.type} tool` });
    } else if (!isPlainObject(inputSchema) || inputSchema.type !== 'object') {
      errors.push({ pointer: '/input_schema', detail: 'must be a JSON Schema of type "object" (tool arguments are an object)' });
    } else {
      checkSchema(errors, '/input_schema', inputSchema);
    }
    checkSchema(errors, '/output_schema', candidate.outputSchema);
    checkSchema(errors, '/approval_when', candidate.approvalWhen);
    if (candidate.approverRole === 'ANALYST') errors.push({ pointer: '/approver_role', detail: 'must be MANAGER or ADMIN (approvers need approvals:decide)' });
    if (!Number.isInteger(candidate.approvalsRequired) || candidate.approvalsRequired < 1 || candidate.approvalsRequired > MAX_APPROVALS_REQUIRED) {
      errors.push({ pointer: '/approvals_required', detail: `must be an integer between 1 and ${MAX_APPROVALS_REQUIRED}` });
    }
    const ttl = candidate.cacheTtlSeconds;
    if (ttl !== null && (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_CACHE_TTL_SECONDS)) {
      errors.push({ pointer: '/cache_ttl_seconds', detail: `must be null or an integer between 1 and ${MAX_CACHE_TTL_SECONDS}` });
    } else if (ttl !== null && candidate.implementation.type === 'builtin' && builtins.get(candidate.implementation.builtin)?.uncacheable) {
      errors.push({ pointer: '/cache_ttl_seconds', detail: "must be null: this built-in's results depend on the caller's rights at the time of the call" });
    }
    if (errors.length > 0 || inputSchema === undefined) throw new ValidationError('The tool definition is invalid', errors);
    return { ...candidate, inputSchema };
  }

  async function announce(uow: UnitOfWork, role: Role, content: NotificationContent): Promise<void> {
    const notifier = deps.notifier();
    if (notifier) await notifier.notifyRole(role, content, uow);
  }

  async function findLive(executor: DbOrTx, ref: ToolRef): Promise<ToolRow | undefined> {
    if ('name' in ref) return repository.findLiveByName(executor, ref.name);
    return UUID.test(ref.idOrName) ? repository.findLiveById(executor, ref.idOrName.toLowerCase()) : repository.findLiveByName(executor, ref.idOrName);
  }

  async function requireLive(executor: DbOrTx, ref: ToolRef): Promise<ToolRow> {
    const row = await findLive(executor, ref);
    if (!row) throw new NotFoundError('Tool');
    return row;
  }

  function toColumns(candidate: Candidate & { inputSchema: JsonSchemaDocument }): Required<ToolPatch> {
    return {
      name: candidate.name,
      description: candidate.description,
      inputSchema: candidate.inputSchema,
      outputSchema: candidate.outputSchema,
      requiredRole: candidate.requiredRole,
      requiresApproval: candidate.requiresApproval,
      approvalWhen: candidate.approvalWhen,
      approvalsRequired: candidate.approvalsRequired,
      approverRole: candidate.approverRole,
      cacheTtlSeconds: candidate.cacheTtlSeconds,
      isEnabled: candidate.isEnabled,
      implementation: candidate.implementation,
    };
  }

  function candidateFromInput(input: ToolInput): Candidate {
    const defaults = executors.get(input.implementation.type)?.defaults?.(input.implementation) ?? {};
    return {
      name: input.name,
      description: input.description ?? defaults.description ?? '',
      inputSchema: input.input_schema,
      outputSchema: input.output_schema === undefined ? (defaults.outputSchema ?? null) : input.output_schema,
      requiredRole: input.required_role ?? 'ANALYST',
      requiresApproval: input.requires_approval ?? defaults.requiresApproval ?? false,
      approvalWhen: input.approval_when ?? null,
      approvalsRequired: input.approvals_required ?? 1,
      approverRole: input.approver_role ?? 'MANAGER',
      cacheTtlSeconds: input.cache_ttl_seconds ?? null,
      isEnabled: input.is_enabled ?? true,
      implementation: input.implementation,
    };
  }

  function implementationSummary(implementation: ToolImplementation): Record<string, unknown> {
    let host: string | null = null;
    if (implementation.url) {
      try {
        host = new URL(implementation.url).host;
      } catch {
        host = null;
      }
    }
    return { type: implementation.type, builtin: implementation.builtin ?? null, host, secret_name: implementation.secret_name ?? null };
  }

  async function insert(
    actor: Actor | null,
    candidate: Candidate & { inputSchema: JsonSchemaDocument },
    context: RequestContext,
    announceIt: boolean,
  ): Promise<ToolRow | undefined> {
    return withTransaction(
      db,
      async (uow) => {
        const row = await repository.insertTool(uow.tx, {
          ...toColumns(candidate),
          createdBy: actor?.userId ?? null,
          createdAt: now(),
          updatedAt: now(),
        });
        if (!row) return undefined;
        afterChange(uow);
        if (announceIt && row.isEnabled) {
          await announce(uow, row.requiredRole, {
            type: 'TOOL_ADDED',
            title: `New tool: ${row.name}`,
            message: row.description ? `The tool "${row.name}" is available: ${row.description}` : `The tool "${row.name}" is available.`,
            data: { tool_id: row.id, tool_name: row.name, requires_approval: row.requiresApproval },
          });
        }
        await audit.record(uow.tx, {
          eventType: 'TOOL_REGISTERED',
          userId: actor?.userId ?? null,
          sessionId: actor?.sessionId ?? null,
          resourceType: RESOURCE_TYPE,
          resourceId: row.id,
          details: {
            tool_name: row.name,
            version: row.version,
            required_role: row.requiredRole,
            requires_approval: row.requiresApproval,
            approval_when: row.approvalWhen !== null,
            approvals_required: row.approvalsRequired,
            approver_role: row.approverRole,
            implementation: implementationSummary(row.implementation),
            seeded: actor === null,
          },
          context,
        });
        return row;
      },
      deps.logger,
    );
  }

  return {
    /** Another instance changed a definition: drop what this one has cached. */
    forgetDefinitions(): void {
      forgetCached();
    },

    /** Tools the actor may use (enabled, role high enough); admins see every tool, disabled ones included. */
    async list(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<ToolView>> {
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { name: 'string' });
      const isAdmin = hasPermission(actor.role, 'tools:manage');
      const rows = await repository.listLive(db, {
        roles: isAdmin ? null : rolesUpTo(actor.role),
        includeDisabled: isAdmin,
        afterName: after?.name,
        limit: limit + 1,
      });
      return toPage(rows, limit, (row) => ({ name: row.name }), presentTool);
    },

    /** Every tool the actor may use, unpaged (the model's tool list). */
    async usableBy(actor: Actor): Promise<ToolRow[]> {
      const rows = await usableLists.getOrLoad(actor.role, () =>
        repository.listLive(db, { roles: rolesUpTo(actor.role), includeDisabled: false, limit: 1_000 }),
      );
      return rows ?? [];
    },

    async get(actor: Actor, ref: ToolRef): Promise<ToolView> {
      const row = await requireLive(db, ref);
      const isAdmin = hasPermission(actor.role, 'tools:manage');
      if (!isAdmin && !row.isEnabled) throw new NotFoundError('Tool');
      if (!isAdmin && !roleAtLeast(actor.role, row.requiredRole)) throw new ForbiddenError(`This tool needs the ${row.requiredRole} role`);
      return presentTool(row);
    },

    /**
     * The tool for a call: it exists, is enabled (a disabled tool does not exist for non-admins) and the actor's role
     * may use it (403 otherwise).
     */
    async resolveForUse(actor: Actor, ref: ToolRef): Promise<ToolRow> {
      const row = await findForUse(ref);
      if (!row) throw new NotFoundError('Tool');
      if (!row.isEnabled) {
        if (hasPermission(actor.role, 'tools:manage')) throw new ConflictError(`The tool "${row.name}" is disabled`);
        throw new NotFoundError('Tool');
      }
      if (!roleAtLeast(actor.role, row.requiredRole)) throw new ForbiddenError(`The tool "${row.name}" needs the ${row.requiredRole} role`);
      return row;
    },

    /** The live tools discovered on one MCP server (enabled or not). */
    async listForMcpServer(serverId: string): Promise<ToolRow[]> {
      return repository.listLiveByMcpServer(db, serverId);
    },

    /** The live tool (enabled or not), for reading its executions. */
    async requireLive(ref: ToolRef): Promise<ToolRow> {
      return requireLive(db, ref);
    },

    async findLiveById(executor: DbOrTx, id: string): Promise<ToolRow | undefined> {
      return repository.findLiveById(executor, id);
    },

    async create(actor: Actor, input: ToolInput, context: RequestContext): Promise<ToolView> {
      requireManage(actor);
      const candidate = validateCandidate(candidateFromInput(input));
      let row: ToolRow | undefined;
      try {
        row = await insert(actor, candidate, context, true);
      } catch (error) {
        if (isUniqueViolation(error)) row = undefined;
        else throw error;
      }
      if (!row) throw new ConflictError(`A tool named "${candidate.name}" already exists`);
      return presentTool(row);
    },

    async update(actor: Actor, ref: ToolRef, input: ToolUpdateInput, context: RequestContext): Promise<ToolView> {
      requireManage(actor);
      const current = await requireLive(db, ref);
      const candidate = validateCandidate({
        name: input.name ?? current.name,
        description: input.description ?? current.description,
        inputSchema: input.input_schema ?? current.inputSchema,
        outputSchema: input.output_schema === undefined ? current.outputSchema : input.output_schema,
        requiredRole: input.required_role ?? current.requiredRole,
        requiresApproval: input.requires_approval ?? current.requiresApproval,
        approvalWhen: input.approval_when === undefined ? current.approvalWhen : input.approval_when,
        approvalsRequired: input.approvals_required ?? current.approvalsRequired,
        approverRole: input.approver_role ?? current.approverRole,
        cacheTtlSeconds: input.cache_ttl_seconds === undefined ? current.cacheTtlSeconds : input.cache_ttl_seconds,
        isEnabled: input.is_enabled ?? current.isEnabled,
        implementation: input.implementation ?? current.implementation,
      });
      const changedFields = Object.keys(input).sort();
      let row: ToolRow | undefined;
      try {
        row = await withTransaction(
          db,
          async (uow) => {
            const updated = await repository.updateTool(uow.tx, current.id, toColumns(candidate), now());
            if (!updated) throw new NotFoundError('Tool');
            afterChange(uow);
            // Everyone who could use it before or can now hears about it.
            const audienceRole = roleAtLeast(current.requiredRole, updated.requiredRole) ? updated.requiredRole : current.requiredRole;
            await announce(uow, audienceRole, {
              type: 'TOOL_UPDATED',
              title: `Tool updated: ${updated.name}`,
              message: updated.isEnabled ? `The tool "${updated.name}" was updated.` : `The tool "${updated.name}" was disabled.`,
              data: { tool_id: updated.id, tool_name: updated.name, is_enabled: updated.isEnabled, changed_fields: changedFields },
            });
            await audit.record(uow.tx, {
              eventType: 'TOOL_UPDATED',
              userId: actor.userId,
              sessionId: actor.sessionId,
              resourceType: RESOURCE_TYPE,
              resourceId: updated.id,
              details: {
                tool_name: updated.name,
                previous_name: current.name === updated.name ? undefined : current.name,
                version: updated.version,
                changed_fields: changedFields,
                is_enabled: updated.isEnabled,
                requires_approval: updated.requiresApproval,
                approvals_required: updated.approvalsRequired,
                approver_role: updated.approverRole,
                implementation: implementationSummary(updated.implementation),
              },
              context,
            });
            return updated;
          },
          deps.logger,
        );
      } catch (error) {
        if (isUniqueViolation(error)) throw new ConflictError(`A tool named "${candidate.name}" already exists`);
        throw error;
      }
      return presentTool(row);
    },

    async remove(actor: Actor, ref: ToolRef, context: RequestContext): Promise<void> {
      requireManage(actor);
      const current = await requireLive(db, ref);
      await withTransaction(
        db,
        async (uow) => {
          const removed = await repository.softDelete(uow.tx, current.id, now());
          if (!removed) throw new NotFoundError('Tool');
          afterChange(uow);
          await announce(uow, current.requiredRole, {
            type: 'TOOL_REMOVED',
            title: `Tool removed: ${current.name}`,
            message: `The tool "${current.name}" is no longer available.`,
            data: { tool_id: current.id, tool_name: current.name },
          });
          await audit.record(uow.tx, {
            eventType: 'TOOL_REMOVED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: RESOURCE_TYPE,
            resourceId: current.id,
            details: { tool_name: current.name, version: removed.version },
            context,
          });
        },
        deps.logger,
      );
    },

    /**
     * Registers each seeded built-in once, at start-up: a name that was ever used (even by a deleted tool) is left
     * alone, so an admin's deletion sticks. Safe when several instances start together (unique live name).
     */
    async seedBuiltins(): Promise<string[]> {
      const seeded: string[] = [];
      for (const builtin of builtins.list()) {
        if (!builtin.seed || (await repository.nameEverUsed(db, builtin.name))) continue;
        const candidate = validateCandidate(
          candidateFromInput({ name: builtin.name, implementation: { type: 'builtin', builtin: builtin.name } }),
        );
        try {
          if (await insert(null, candidate, SYSTEM_CONTEXT, false)) seeded.push(builtin.name);
        } catch (error) {
          if (!isUniqueViolation(error)) throw error;
        }
      }
      return seeded;
    },
  };
}

export type ToolRegistry = ReturnType<typeof createToolRegistry>;

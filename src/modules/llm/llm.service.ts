import { performance } from 'node:perf_hooks';
import type { AppConfig } from '../../config.js';
import type { Db, DbOrTx } from '../../db/client.js';
import type { ProviderSecretRefs, StoredRedactionPolicy } from '../../db/schema/llm.js';
import { withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { createWriteBatcher } from '../../db/write-batcher.js';
import { ForbiddenError, NotFoundError, RateLimitedError, UpstreamError, ValidationError } from '../../lib/errors.js';
import type { PubSub } from '../../lib/infra/pubsub.js';
import { clampLimit, decodeCursor, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, isRole, ROLES, type Actor, type Permission, type RequestContext, type Role } from '../auth/permissions.js';
import {
  createProviderRegistry,
  formatModelId,
  knownContextWindow,
  parseModelId,
  ProviderNotConfiguredError,
  PROVIDER_NAMES,
  type ChatStreamEvent,
  type DiscoveredModel,
  type ProviderName,
  type ProviderRegistry,
  type ProviderStatus,
  type StreamChatRequest,
} from './providers/index.js';
import { PII_TYPES, type PiiType, type RedactionPolicy } from '../redaction/index.js';
import type { LlmModelRow, LlmRepository, LlmSettingsRow, UsageAddition } from './llm.repository.js';
import type { CloudMaxLabel } from './sensitivity-routing.js';

/** What other modules see of a model; settings in `config` are optional per-model defaults for chat. */
export interface LlmModelView {
  id: string;
  provider: ProviderName;
  name: string;
  is_local: boolean;
  context_window: number | null;
  is_enabled: boolean;
  /** An administrator registered or configured it (a row in llm_models). */
  registered: boolean;
  /** Its provider listed it just now (or within the discovery cache's lifetime). */
  discovered: boolean;
  config: ModelConfig;
}

export interface ModelConfig {
  temperature?: number;
  max_output_tokens?: number;
}

export interface LlmConfigView {
  default_model: string | null;
  temperature: number | null;
  max_context_tokens: number | null;
  /** Providers whose API key was set through the API (a system credential) rather than the environment. */
  providers_with_stored_keys: ProviderName[];
  /** What is redacted for cloud models and which types raise a document's label. */
  redaction: { redact_types: PiiType[]; label_types: PiiType[]; time_budget_ms: number };
  /** Model id → the roles that may use it; a model not named here is open to every role. */
  model_access: Record<string, Role[]>;
  /** Sensitivity routing as this instance applies it (CLOUD_MAX_LABEL, LOCAL_FALLBACK_MODEL): read-only, from the environment. */
  routing: { cloud_max_label: CloudMaxLabel; local_fallback_model: string | null };
  updated_at: string | null;
}

export interface ModelTestResult {
  ok: boolean;
  latency_ms: number;
  first_token_ms: number | null;
  detail: string;
}

export interface ProviderStatusView {
  reachable: boolean;
  latency_ms: number | null;
  models: string[];
  is_local: boolean;
  detail: string | null;
}

/** A model chosen for one chat request, with everything chat needs to know about it. */
export interface ResolvedModel {
  id: string;
  provider: ProviderName;
  name: string;
  isLocal: boolean;
  /** The prompt budget: `max_context_tokens` or the model's window, whichever is smaller (a default when unknown). */
  contextTokens: number;
  temperature: number | undefined;
  maxOutputTokens: number | undefined;
}

export interface SaveModelInput {
  id: string;
  name?: string;
  context_window?: number | null;
  is_enabled?: boolean;
  config?: ModelConfig;
}

export interface UpdateConfigInput {
  default_model?: string | null;
  temperature?: number | null;
  max_context_tokens?: number | null;
  /** null: back to REDACTION_TYPES. */
  redact_types?: PiiType[] | null;
  /** null: back to REDACTION_LABEL_TYPES. */
  label_types?: PiiType[] | null;
  /** Replaces the whole map (model id → roles that may use it); null or `{}`: every model open to every role. */
  model_access?: Record<string, Role[]> | null;
}

export interface TokenCounts {
  input_tokens: number | null;
  output_tokens: number | null;
}

/**
 * The gateway's own credential store for provider keys set through the API: system credentials, apart from users'
 * secrets (never listed or revealed through the vault), in the `llm.` namespace only.
 */
export interface ProviderKeyStore {
  set(actor: Actor, name: string, value: string, context: RequestContext, uow?: UnitOfWork): Promise<{ id: string; name: string; created: boolean }>;
  remove(actor: Actor, name: string, context: RequestContext, uow?: UnitOfWork): Promise<boolean>;
  use(name: string, options?: { consumer?: string }): Promise<string | undefined>;
}

export interface LlmLogger {
  warn(obj: object, msg: string): void;
}

export interface LlmServiceDeps {
  db: Db;
  repository: LlmRepository;
  audit: Pick<AuditRecorder, 'record'>;
  config: AppConfig['llm'];
  /** Resolved at call time: the vault module (which keeps system credentials) may be absent. */
  credentials: () => ProviderKeyStore | undefined;
  pubsub: PubSub;
  logger?: LlmLogger;
  now?: () => Date;
  /** How long a listing waits for each provider (default 2 s): an unreachable one is left out, not waited on. */
  discoveryTimeoutMs?: number;
}

export const LLM_CONFIG_CHANNEL = 'llm.config';
/** Settings and registered models are re-read at least this often, in case an invalidation message was lost. */
const STATE_TTL_MS = 30_000;
const DISCOVERY_TTL_MS = 15_000;
/** A provider that failed to list is asked again only after this long, so listings stay fast while it is down. */
const DISCOVERY_FAILURE_TTL_MS = 5_000;
/** When neither the model nor the settings say how large the window is. Ollama's own default is small. */
const DEFAULT_CONTEXT_TOKENS: Record<ProviderName, number> = { ollama: 4_096, openai: 8_192, anthropic: 8_192, gemini: 8_192 };
/** How many available models an unknown-model error names. */
const MAX_MODELS_NAMED = 20;
const TEST_PROMPT = 'Reply with the single word OK.';
const TEST_TIMEOUT_MS = 30_000;
const DAY_MS = 86_400_000;

interface State {
  settings: LlmSettingsRow | undefined;
  models: Map<string, LlmModelRow>;
  loadedAt: number;
}

interface DiscoveryEntry {
  at: number;
  ok: boolean;
  models: DiscoveredModel[];
}

/** A model id that names no registered or discovered model (422 on /api/v1; 404 `model_not_found` on /v1). */
export class UnknownModelError extends ValidationError {
  constructor(
    readonly modelId: string,
    readonly available: string[],
  ) {
    const shown = available.slice(0, MAX_MODELS_NAMED);
    const list = shown.length === 0 ? 'none' : `${shown.join(', ')}${available.length > shown.length ? ', …' : ''}`;
    super(`Model ${modelId} is not available; available models: ${list}`, [
      { pointer: '/model', detail: `is not a registered or discovered model (available: ${list})` },
    ]);
    this.extensions.available_models = shown;
  }
}

/**
 * 403: an administrator has limited this model to other roles (`model_access` of /llm/config). The OpenAI-compatible
 * API answers it as OpenAI does for a model the caller has no access to: 404 `model_not_found`.
 */
export class ModelAccessDeniedError extends ForbiddenError {
  constructor(readonly modelId: string) {
    super(`Your role may not use the model ${modelId}`);
    this.extensions.model = modelId;
  }
}

/** 429: the user's daily token budget (LLM_DAILY_TOKEN_BUDGET) is used up. */
export class TokenBudgetExceededError extends RateLimitedError {}

/** Which roles may use `id` under a stored access map: a model not named is open to every role. */
export function modelAllowed(access: Record<string, string[]> | null | undefined, id: string, role: Role): boolean {
  const roles = access?.[id];
  return roles === undefined || roles.includes(role);
}

function requirePermission(actor: Actor, permission: Permission): void {
  if (!hasPermission(actor.role, permission)) throw new ForbiddenError(`This action needs the ${permission} permission`);
}

function parseConfig(raw: Record<string, unknown>): ModelConfig {
  const config: ModelConfig = {};
  if (typeof raw.temperature === 'number') config.temperature = raw.temperature;
  if (typeof raw.max_output_tokens === 'number') config.max_output_tokens = raw.max_output_tokens;
  return config;
}

/** `2026-11-26` for a date, in UTC. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

export function secondsUntilUtcMidnight(at: Date): number {
  const next = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()) + DAY_MS;
  return Math.max(1, Math.ceil((next - at.getTime()) / 1000));
}

function providerKeyName(provider: ProviderName): string {
  return `llm.${provider}.api_key`;
}

/**
 * The LLM gateway: which providers and models exist (environment, registered rows, discovery), the gateway settings,
 * provider keys kept as system credentials, per-user token accounting, and one streaming model call for chat.
 */
export function createLlmService(deps: LlmServiceDeps) {
  const { db, repository, audit, config } = deps;
  const now = deps.now ?? (() => new Date());
  const discoveryTimeoutMs = deps.discoveryTimeoutMs ?? 2_000;

  const usageWrites = createWriteBatcher<UsageAddition, void>({
    writeOne: (call) => repository.addUsage(db, call.userId, call.day, call.inputTokens, call.outputTokens, call.now),
    writeMany: async (calls) => {
      await repository.addUsageMany(db, calls);
      return calls.map(() => undefined);
    },
  });
  // Budget checks of one user that arrive while a read of their total is under way share that read (a burst of one
  // user's turns is one query, not one each); nothing is kept once it has answered.
  const usageReads = new Map<string, Promise<number>>();
  function usageToday(userId: string, day: string): Promise<number> {
    const key = `${userId}:${day}`;
    let read = usageReads.get(key);
    if (!read) {
      read = repository.usageOn(db, userId, day).finally(() => usageReads.delete(key));
      usageReads.set(key, read);
    }
    return read;
  }

  let registry: ProviderRegistry = createProviderRegistry(config);
  /** The settings version the registry was built for; the registry is rebuilt when stored keys change. */
  let registryBuiltFor: string | null = null;
  let state: State | null = null;
  let loading: Promise<State> | null = null;
  const discovery = new Map<ProviderName, DiscoveryEntry>();
  const discovering = new Map<ProviderName, Promise<DiscoveryEntry>>();

  async function buildRegistry(settings: LlmSettingsRow | undefined): Promise<void> {
    const refs: ProviderSecretRefs = settings?.providerSecrets ?? {};
    const version = settings ? `${settings.updatedAt.getTime()}:${JSON.stringify(refs)}` : 'env';
    if (version === registryBuiltFor) return;
    const overrides: Partial<Record<ProviderName, string>> = {};
    const credentials = deps.credentials();
    for (const provider of PROVIDER_NAMES) {
      if (!refs[provider] || !credentials) continue;
      try {
        const key = await credentials.use(providerKeyName(provider), { consumer: `llm:${provider}` });
        if (key !== undefined) overrides[provider] = key;
        else deps.logger?.warn({ provider }, 'stored LLM provider key is missing; using the environment');
      } catch (error) {
        // The environment's key (if any) still works; an operator sees why the stored one was not used.
        deps.logger?.warn(
          { provider, err: error instanceof Error ? error.message : String(error) },
          'stored LLM provider key could not be read; using the environment',
        );
      }
    }
    registry = createProviderRegistry({
      ...config,
      openaiApiKey: overrides.openai ?? config.openaiApiKey,
      anthropicApiKey: overrides.anthropic ?? config.anthropicApiKey,
      geminiApiKey: overrides.gemini ?? config.geminiApiKey,
    });
    registryBuiltFor = version;
    discovery.clear();
  }

  async function load(): Promise<State> {
    const [settings, rows] = await Promise.all([repository.getSettings(db), repository.listModels(db)]);
    await buildRegistry(settings);
    const next: State = { settings, models: new Map(rows.map((row) => [row.id, row])), loadedAt: Date.now() };
    state = next;
    return next;
  }

  async function current(): Promise<State> {
    if (state && Date.now() - state.loadedAt < STATE_TTL_MS) return state;
    loading ??= load().finally(() => {
      loading = null;
    });
    return loading;
  }

  function invalidate(): void {
    state = null;
  }

  async function announceChange(): Promise<void> {
    invalidate();
    await deps.pubsub.publish(LLM_CONFIG_CHANNEL, 'changed').catch((error: unknown) => {
      deps.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not announce an LLM configuration change');
    });
  }

  async function discover(provider: ProviderName, fresh = false): Promise<DiscoveryEntry> {
    const cached = discovery.get(provider);
    const ttl = cached?.ok ? DISCOVERY_TTL_MS : DISCOVERY_FAILURE_TTL_MS;
    if (!fresh && cached && Date.now() - cached.at < ttl) return cached;
    const inFlight = discovering.get(provider);
    if (inFlight) return inFlight;
    const started = registry;
    const promise = started
      .discoverModels(provider, { signal: AbortSignal.timeout(discoveryTimeoutMs) })
      .then((models): DiscoveryEntry => ({ at: Date.now(), ok: true, models }))
      .catch((): DiscoveryEntry => ({ at: Date.now(), ok: false, models: [] }))
      .then((entry) => {
        if (registry === started) discovery.set(provider, entry);
        return entry;
      })
      .finally(() => discovering.delete(provider));
    discovering.set(provider, promise);
    return promise;
  }

  async function discoverAll(): Promise<DiscoveredModel[]> {
    const providers = registry.listProviders().map((p) => p.name);
    const entries = await Promise.all(providers.map((provider) => discover(provider)));
    return entries.flatMap((entry) => entry.models);
  }

  function isLocalProvider(provider: ProviderName): boolean {
    if (registry.isConfigured(provider)) return registry.isLocal(provider);
    return provider === 'ollama' || (provider === 'openai' && config.openaiLocal);
  }

  function present(row: LlmModelRow | undefined, found: DiscoveredModel | undefined): LlmModelView {
    const id = row?.id ?? found!.id;
    const ref = parseModelId(id);
    return {
      id,
      provider: ref.provider,
      name: row?.name ?? found?.name ?? ref.model,
      is_local: isLocalProvider(ref.provider),
      context_window: row?.contextWindow ?? found?.context_window ?? knownContextWindow(ref.model),
      is_enabled: row?.isEnabled ?? true,
      registered: row !== undefined,
      discovered: found !== undefined,
      config: parseConfig(row?.config ?? {}),
    };
  }

  async function allModels(): Promise<LlmModelView[]> {
    const [{ models }, found] = await Promise.all([current(), discoverAll()]);
    const byId = new Map<string, LlmModelView>();
    const foundById = new Map(found.map((model) => [model.id, model]));
    for (const row of models.values()) byId.set(row.id, present(row, foundById.get(row.id)));
    for (const model of found) if (!byId.has(model.id)) byId.set(model.id, present(undefined, model));
    return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  function validateModelId(id: string, pointer: string): ProviderName {
    try {
      return parseModelId(id).provider;
    } catch (error) {
      if (error instanceof ValidationError) {
        throw new ValidationError(error.message, [{ pointer, detail: 'must be provider/model with a known provider' }]);
      }
      throw error;
    }
  }

  async function firstAvailableModel(s: State): Promise<string | undefined> {
    for (const row of s.models.values()) {
      const provider = parseModelId(row.id).provider;
      if (row.isEnabled && registry.isConfigured(provider)) return row.id;
    }
    for (const model of await discoverAll()) {
      if (s.models.get(model.id)?.isEnabled !== false) return model.id;
    }
    return undefined;
  }

  function audited(uow: UnitOfWork, actor: Actor, context: RequestContext, resourceId: string, details: Record<string, unknown>) {
    return audit.record(uow.tx, {
      eventType: 'LLM_CONFIG_CHANGED',
      userId: actor.userId,
      sessionId: actor.sessionId,
      resourceType: 'llm',
      resourceId,
      details,
      context,
    });
  }

  return {
    /** Loads settings (and any provider keys stored as system credentials) and listens for changes made on other instances. */
    async start(): Promise<() => Promise<void>> {
      await current();
      return deps.pubsub.subscribe(LLM_CONFIG_CHANNEL, () => invalidate());
    },

    async listModels(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<LlmModelView>> {
      requirePermission(actor, 'llm:read');
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { id: 'string' });
      const models = await allModels();
      const start = after === undefined ? 0 : models.findIndex((model) => model.id > String(after.id));
      const page = start < 0 ? [] : models.slice(start, start + limit);
      const more = start >= 0 && start + limit < models.length;
      const last = page[page.length - 1];
      return {
        items: page,
        next_cursor: more && last ? Buffer.from(JSON.stringify({ id: last.id }), 'utf8').toString('base64url') : null,
      };
    },

    async getModel(actor: Actor, id: string): Promise<LlmModelView> {
      requirePermission(actor, 'llm:read');
      let provider: ProviderName;
      try {
        provider = parseModelId(id).provider;
      } catch {
        throw new NotFoundError('Model');
      }
      const s = await current();
      const row = s.models.get(id);
      const found = registry.isConfigured(provider) ? (await discover(provider)).models.find((m) => m.id === id) : undefined;
      if (!row && !found) throw new NotFoundError('Model');
      return present(row, found);
    },

    /**
     * The models this actor may call now: enabled, their provider configured, and open to the actor's role under
     * `model_access` (the OpenAI-compatible `GET /v1/models`).
     */
    async usableModels(actor: Actor): Promise<LlmModelView[]> {
      requirePermission(actor, 'chat');
      const [s, models] = await Promise.all([current(), allModels()]);
      return models.filter((m) => m.is_enabled && registry.isConfigured(m.provider) && modelAllowed(s.settings?.modelAccess, m.id, actor.role));
    },

    /** Registers a model, or changes a registered one (enable, disable, name, context window, per-model settings). */
    async saveModel(actor: Actor, input: SaveModelInput, context: RequestContext): Promise<{ model: LlmModelView; created: boolean }> {
      requirePermission(actor, 'llm:configure');
      const provider = validateModelId(input.id, '/id');
      const ref = parseModelId(input.id);
      const id = formatModelId(ref);
      const result = await withTransaction(
        db,
        async (uow) => {
          const existing = await repository.findModel(uow.tx, id, true);
          const write = {
            id,
            provider,
            name: input.name ?? existing?.name ?? ref.model,
            isLocal: isLocalProvider(provider),
            contextWindow: input.context_window !== undefined ? input.context_window : (existing?.contextWindow ?? null),
            isEnabled: input.is_enabled ?? existing?.isEnabled ?? true,
            config: input.config !== undefined ? { ...input.config } : (existing?.config ?? {}),
            now: now(),
          };
          let row: LlmModelRow | undefined;
          let created = false;
          if (existing) {
            row = await repository.updateModel(uow.tx, write);
          } else {
            row = await repository.insertModel(uow.tx, write);
            created = row !== undefined;
            // A concurrent registration won the insert: apply this one as an update.
            row ??= await repository.updateModel(uow.tx, write);
          }
          const changes: Record<string, unknown> = {};
          if (!existing || existing.isEnabled !== row.isEnabled) changes.is_enabled = row.isEnabled;
          if (!existing || existing.name !== row.name) changes.name = row.name;
          if (!existing || existing.contextWindow !== row.contextWindow) changes.context_window = row.contextWindow;
          if (!existing || JSON.stringify(existing.config) !== JSON.stringify(row.config)) changes.config = row.config;
          await audited(uow, actor, context, id, { action: created ? 'model_registered' : 'model_updated', model_id: id, changes });
          uow.afterCommit(() => announceChange());
          return { row, created };
        },
        deps.logger,
      );
      const found = discovery.get(provider)?.models.find((m) => m.id === id);
      return { model: present(result.row, found), created: result.created };
    },

    /** One short call through the real client: is the model there, how long to the first token and to the end. */
    async testModel(actor: Actor, id: string): Promise<ModelTestResult> {
      requirePermission(actor, 'llm:configure');
      validateModelId(id, '/id');
      await current();
      const started = performance.now();
      let firstToken: number | null = null;
      let text = '';
      let detail: string | null = null;
      let ok = false;
      const events = registry.streamChat({
        modelId: id,
        messages: [{ role: 'user', content: TEST_PROMPT }],
        maxOutputTokens: 16,
        timeoutMs: Math.min(config.requestTimeoutMs, TEST_TIMEOUT_MS),
      });
      for await (const event of events) {
        if (event.type === 'text') {
          firstToken ??= performance.now() - started;
          text += event.delta;
        } else if (event.type === 'tool_call') {
          firstToken ??= performance.now() - started;
        } else if (event.type === 'finish') {
          ok = true;
        } else {
          detail = event.error.message;
        }
      }
      const answer = text.trim().slice(0, 100);
      return {
        ok,
        latency_ms: Math.round(performance.now() - started),
        first_token_ms: firstToken === null ? null : Math.round(firstToken),
        detail: ok ? `The model answered${answer === '' ? ' with no text' : `: ${answer}`}` : (detail ?? 'no answer'),
      };
    },

    async getConfig(actor: Actor): Promise<LlmConfigView> {
      requirePermission(actor, 'llm:read');
      const { settings } = await current();
      return presentConfig(settings, config);
    },

    /** The redaction policy in force: the environment's, with what /llm/config changed. */
    async redactionPolicy(): Promise<RedactionPolicy> {
      const { settings } = await current();
      return policyOf(settings, config);
    },

    async updateConfig(actor: Actor, input: UpdateConfigInput, context: RequestContext): Promise<LlmConfigView> {
      requirePermission(actor, 'llm:configure');
      if (input.default_model !== undefined && input.default_model !== null) validateModelId(input.default_model, '/default_model');
      const modelAccess = input.model_access === undefined ? undefined : normalizeModelAccess(input.model_access, validateModelId);
      const row = await withTransaction(
        db,
        async (uow) => {
          const before = await repository.getSettings(uow.tx, true);
          const storedPolicy = nextStoredPolicy(before?.redactionPolicy ?? null, input);
          const saved = await repository.saveSettings(uow.tx, {
            defaultModel: input.default_model,
            temperature: input.temperature,
            maxContextTokens: input.max_context_tokens,
            ...(storedPolicy === undefined ? {} : { redactionPolicy: storedPolicy }),
            ...(modelAccess === undefined ? {} : { modelAccess }),
            updatedBy: actor.userId,
            now: now(),
          });
          const changes: Record<string, { from: unknown; to: unknown }> = {};
          const compare = (field: string, from: unknown, to: unknown) => {
            if (from !== to) changes[field] = { from, to };
          };
          compare('default_model', before?.defaultModel ?? null, saved.defaultModel);
          compare('temperature', before?.temperature ?? null, saved.temperature);
          compare('max_context_tokens', before?.maxContextTokens ?? null, saved.maxContextTokens);
          const policyBefore = policyOf(before, config);
          const policyAfter = policyOf(saved, config);
          compare('redact_types', policyBefore.redactTypes.join(','), policyAfter.redactTypes.join(','));
          compare('label_types', policyBefore.labelTypes.join(','), policyAfter.labelTypes.join(','));
          compare('model_access', JSON.stringify(before?.modelAccess ?? {}), JSON.stringify(saved.modelAccess ?? {}));
          await audited(uow, actor, context, 'config', { action: 'config_updated', changes });
          uow.afterCommit(() => announceChange());
          return saved;
        },
        deps.logger,
      );
      return presentConfig(row, config);
    },

    /** Stores a provider's API key as a system credential (a new version when one is stored already); it replaces the environment's. */
    async setProviderKey(actor: Actor, provider: ProviderName, apiKey: string, context: RequestContext): Promise<LlmConfigView> {
      requirePermission(actor, 'llm:configure');
      if (provider === 'ollama') {
        throw new ValidationError('Ollama takes no API key', [{ pointer: '/provider', detail: 'must be openai, anthropic or gemini' }]);
      }
      const credentials = deps.credentials();
      if (!credentials) throw new UpstreamError('vault', 'The vault is not available: set the key in the environment instead', true);
      const row = await withTransaction(
        db,
        async (uow) => {
          const settings = await repository.getSettings(uow.tx, true);
          const refs: ProviderSecretRefs = { ...(settings?.providerSecrets ?? {}) };
          const stored = await credentials.set(actor, providerKeyName(provider), apiKey, context, uow);
          const action = refs[provider] && !stored.created ? 'provider_key_replaced' : 'provider_key_stored';
          refs[provider] = { secret_id: stored.id, secret_name: stored.name };
          const saved = await repository.saveSettings(uow.tx, { providerSecrets: refs, updatedBy: actor.userId, now: now() });
          await audited(uow, actor, context, `provider:${provider}`, { action, provider, secret_name: stored.name });
          uow.afterCommit(() => announceChange());
          return saved;
        },
        deps.logger,
      );
      return presentConfig(row, config);
    },

    /** Deletes a stored provider key; the environment's key (if any) applies again. */
    async removeProviderKey(actor: Actor, provider: ProviderName, context: RequestContext): Promise<LlmConfigView> {
      requirePermission(actor, 'llm:configure');
      const credentials = deps.credentials();
      const row = await withTransaction(
        db,
        async (uow) => {
          const settings = await repository.getSettings(uow.tx, true);
          const refs: ProviderSecretRefs = { ...(settings?.providerSecrets ?? {}) };
          const ref = refs[provider];
          if (!ref) throw new NotFoundError('Stored provider key');
          // Already gone from the store: forgetting the reference is all that is left to do.
          if (credentials) await credentials.remove(actor, providerKeyName(provider), context, uow);
          delete refs[provider];
          const saved = await repository.saveSettings(uow.tx, { providerSecrets: refs, updatedBy: actor.userId, now: now() });
          await audited(uow, actor, context, `provider:${provider}`, { action: 'provider_key_removed', provider, secret_name: ref.secret_name });
          uow.afterCommit(() => announceChange());
          return saved;
        },
        deps.logger,
      );
      return presentConfig(row, config);
    },

    async status(actor: Actor): Promise<Record<string, ProviderStatusView>> {
      requirePermission(actor, 'llm:read');
      await current();
      const statuses: Array<ProviderStatus & { name: ProviderName }> = await registry.checkAllStatuses();
      const out: Record<string, ProviderStatusView> = {};
      for (const status of statuses) {
        out[status.name] = {
          reachable: status.reachable,
          latency_ms: status.latency_ms,
          models: status.models,
          is_local: status.is_local,
          detail: status.detail,
        };
      }
      return out;
    },

    /**
     * The model a chat request runs on: the one asked for, else the session's, else the configured default, else the
     * first available. Throws a ValidationError (422) for an unusable id, before anything is stored.
     */
    async resolveModel(requested: string | undefined, fallback?: string, options: { role?: Role } = {}): Promise<ResolvedModel> {
      const s = await current();
      const id =
        requested ?? fallback ?? s.settings?.defaultModel ?? config.defaultModel ?? (await firstAvailableModel(s));
      if (id === undefined) {
        throw new UpstreamError('llm', 'No LLM model is available: configure a provider and LLM_DEFAULT_MODEL', true);
      }
      const provider = validateModelId(id, '/model');
      const role = options.role;
      // Before anything else about the model: a caller learns nothing about a model their role may not use.
      if (role !== undefined && !modelAllowed(s.settings?.modelAccess, id, role)) throw new ModelAccessDeniedError(id);
      if (!registry.isConfigured(provider)) {
        const error = new ProviderNotConfiguredError(provider);
        throw new ValidationError(error.message, [{ pointer: '/model', detail: `the ${provider} provider is not configured` }]);
      }
      const row = s.models.get(id);
      if (row && !row.isEnabled) {
        throw new ValidationError(`Model ${id} is disabled`, [{ pointer: '/model', detail: 'is disabled by an administrator' }]);
      }
      const ref = parseModelId(id);
      // A model asked for by name must exist: registered, or listed by its provider. When the provider could not list
      // its models just now, the call goes ahead (the provider answers for itself).
      if (!row && requested !== undefined) {
        const listing = await discover(provider);
        // Ollama takes `name` for `name:latest`.
        const listed = (m: DiscoveredModel) => m.id === id || (provider === 'ollama' && !ref.model.includes(':') && m.id === `${id}:latest`);
        if (listing.ok && !listing.models.some(listed)) {
          const usable = (await allModels())
            .filter((m) => m.is_enabled && registry.isConfigured(m.provider) && (role === undefined || modelAllowed(s.settings?.modelAccess, m.id, role)))
            .map((m) => m.id);
          throw new UnknownModelError(id, usable);
        }
      }
      const modelConfig = parseConfig(row?.config ?? {});
      const window =
        row?.contextWindow ??
        discovery.get(provider)?.models.find((m) => m.id === id)?.context_window ??
        knownContextWindow(ref.model) ??
        DEFAULT_CONTEXT_TOKENS[provider];
      const limit = s.settings?.maxContextTokens;
      return {
        id,
        provider,
        name: ref.model,
        isLocal: registry.isLocal(provider),
        contextTokens: limit ? Math.min(limit, window) : window,
        temperature: modelConfig.temperature ?? s.settings?.temperature ?? undefined,
        maxOutputTokens: modelConfig.max_output_tokens,
      };
    },

    /**
     * Whether a model can take a call now: its provider is configured, it is not disabled, and its provider lists it
     * (discovery, cached for seconds; a provider that cannot be reached lists nothing). The local fallback of
     * sensitivity routing is only used when this holds.
     */
    async modelAvailable(id: string): Promise<boolean> {
      const s = await current();
      let ref: ReturnType<typeof parseModelId>;
      try {
        ref = parseModelId(id);
      } catch {
        return false;
      }
      const normalized = formatModelId(ref);
      if (!registry.isConfigured(ref.provider) || s.models.get(normalized)?.isEnabled === false) return false;
      const entry = await discover(ref.provider);
      return entry.ok && entry.models.some((model) => model.id === normalized);
    },

    /** One model step (see the provider layer); throws only for a model id that cannot be used. */
    streamChat(request: StreamChatRequest): AsyncIterable<ChatStreamEvent> {
      return registry.streamChat(request);
    },

    /** 429 when the user has used up today's token budget (LLM_DAILY_TOKEN_BUDGET); the budget resets at 00:00 UTC. */
    async checkBudget(userId: string): Promise<void> {
      const budget = config.dailyTokenBudget;
      if (budget === undefined) return;
      const at = now();
      const used = await usageToday(userId, utcDay(at));
      if (used >= budget) {
        throw new TokenBudgetExceededError(
          `Daily token budget of ${budget} tokens is used up; it resets at 00:00 UTC`,
          secondsUntilUtcMidnight(at),
        );
      }
    },

    /**
     * Adds one model call's tokens to the user's daily total: one atomic upsert inside the transaction if given one;
     * on the database itself, grouped with the calls of concurrent turns (resolves once committed either way).
     */
    async recordUsage(executor: DbOrTx, userId: string, usage: TokenCounts): Promise<void> {
      const at = now();
      const call: UsageAddition = { userId, day: utcDay(at), inputTokens: usage.input_tokens ?? 0, outputTokens: usage.output_tokens ?? 0, now: at };
      if (executor === db) {
        await usageWrites.write(call);
        return;
      }
      await repository.addUsage(executor, call.userId, call.day, call.inputTokens, call.outputTokens, call.now);
    },
  };
}

/** A stored list that names a type this version does not know (an older or newer release wrote it) keeps the known ones. */
function knownTypes(list: string[] | undefined, fallback: PiiType[]): PiiType[] {
  if (list === undefined) return fallback;
  return PII_TYPES.filter((t) => list.includes(t));
}

function policyOf(row: LlmSettingsRow | undefined, config: AppConfig['llm']): RedactionPolicy {
  const stored = row?.redactionPolicy ?? {};
  return {
    redactTypes: knownTypes(stored.redact_types, config.redactionTypes),
    labelTypes: knownTypes(stored.label_types, config.redactionLabelTypes),
    timeBudgetMs: config.redactionTimeBudgetMs,
  };
}

/** The stored override after an update; undefined: the update does not touch it. */
function nextStoredPolicy(current: StoredRedactionPolicy | null, input: UpdateConfigInput): StoredRedactionPolicy | null | undefined {
  if (input.redact_types === undefined && input.label_types === undefined) return undefined;
  const next: StoredRedactionPolicy = { ...(current ?? {}) };
  for (const [field, value] of [
    ['redact_types', input.redact_types],
    ['label_types', input.label_types],
  ] as const) {
    if (value === undefined) continue;
    if (value === null) delete next[field];
    else next[field] = PII_TYPES.filter((t) => value.includes(t));
  }
  return Object.keys(next).length === 0 ? null : next;
}

/** The stored form of a `model_access` update: ids normalised, roles in rank order; null when nothing is limited. */
function normalizeModelAccess(
  input: Record<string, Role[]> | null,
  validate: (id: string, pointer: string) => ProviderName,
): Record<string, Role[]> | null {
  if (input === null) return null;
  const out: Record<string, Role[]> = {};
  for (const [id, roles] of Object.entries(input)) {
    const pointer = `/model_access/${id.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    validate(id, pointer);
    out[formatModelId(parseModelId(id))] = ROLES.filter((role) => roles.includes(role));
  }
  return Object.keys(out).length === 0 ? null : out;
}

function presentModelAccess(stored: Record<string, string[]> | null | undefined): Record<string, Role[]> {
  const out: Record<string, Role[]> = {};
  for (const [id, roles] of Object.entries(stored ?? {})) out[id] = roles.filter(isRole);
  return out;
}

function presentConfig(row: LlmSettingsRow | undefined, config: AppConfig['llm']): LlmConfigView {
  const refs = row?.providerSecrets ?? {};
  const policy = policyOf(row, config);
  return {
    default_model: row?.defaultModel ?? null,
    temperature: row?.temperature ?? null,
    max_context_tokens: row?.maxContextTokens ?? null,
    providers_with_stored_keys: PROVIDER_NAMES.filter((name) => refs[name] !== undefined),
    redaction: { redact_types: [...policy.redactTypes], label_types: [...policy.labelTypes], time_budget_ms: policy.timeBudgetMs },
    model_access: presentModelAccess(row?.modelAccess),
    routing: { cloud_max_label: config.cloudMaxLabel, local_fallback_model: config.localFallbackModel ?? null },
    updated_at: row ? row.updatedAt.toISOString() : null,
  };
}

export type LlmService = ReturnType<typeof createLlmService>;

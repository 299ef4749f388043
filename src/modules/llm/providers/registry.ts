import { performance } from 'node:perf_hooks';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createOpenAI } from '@ai-sdk/openai';
import { createOllama } from 'ollama-ai-provider-v2';
import { httpFetch } from './http-fetch.js';
import { discoverModels, type DiscoveredModel } from './discovery.js';
import { LlmProviderError, ProviderNotConfiguredError, toProviderError } from './errors.js';
import { parseModelId, type ProviderName } from './model-id.js';
import { configuredSecrets, resolveProviders, type LlmProvidersConfig, type ResolvedProvider } from './provider-config.js';
import { streamModel, type ChatModel, type ChatStreamEvent, type StreamChatOptions } from './stream-chat.js';

export interface ProviderInfo {
  name: ProviderName;
  is_local: boolean;
}

export interface ProviderStatus {
  reachable: boolean;
  /** Round trip of the model listing; null when unreachable. */
  latency_ms: number | null;
  /** Ids (`provider/model`) of the models the provider lists. */
  models: string[];
  is_local: boolean;
  /** Why it is unreachable (sanitized); null when reachable. */
  detail: string | null;
}

export interface StreamChatRequest extends Omit<StreamChatOptions, 'timeoutMs'> {
  /** `provider/model` */
  modelId: string;
  /** Default: the configured `requestTimeoutMs`. */
  timeoutMs?: number;
}

const DEFAULT_DISCOVERY_TIMEOUT_MS = 5000;

/**
 * The configured LLM providers behind one interface: which exist, what models they list, whether they answer, and
 * streaming one model call. Holds no state besides the SDK clients; safe to share.
 */
export function createProviderRegistry(config: LlmProvidersConfig) {
  const providers = new Map<ProviderName, ResolvedProvider>(resolveProviders(config).map((p) => [p.name, p]));
  const secrets = configuredSecrets(config);
  const discoveryTimeoutMs =
    config.discoveryTimeoutMs ?? Math.min(DEFAULT_DISCOVERY_TIMEOUT_MS, config.requestTimeoutMs);
  const factories = new Map<ProviderName, (model: string) => ChatModel>();

  function provider(name: ProviderName): ResolvedProvider {
    const resolved = providers.get(name);
    if (!resolved) throw new ProviderNotConfiguredError(name);
    return resolved;
  }

  function factory(resolved: ResolvedProvider): (model: string) => ChatModel {
    const cached = factories.get(resolved.name);
    if (cached) return cached;
    const { baseUrl: baseURL, headers } = resolved;
    let created: (model: string) => ChatModel;
    switch (resolved.name) {
      case 'ollama': {
        const client = createOllama({ baseURL, headers, fetch: httpFetch });
        created = (model) => client.chat(model);
        break;
      }
      case 'openai': {
        // Keyless compatible servers (vLLM, llama.cpp, LM Studio) ignore the empty bearer; the SDK needs a string.
        const client = createOpenAI({ baseURL, apiKey: resolved.apiKey ?? '', headers, fetch: httpFetch });
        // Chat Completions, which every OpenAI-compatible server speaks (the default would be the Responses API).
        created = (model) => client.chat(model);
        break;
      }
      case 'anthropic': {
        const client = createAnthropic({ baseURL, apiKey: resolved.apiKey ?? '', headers, fetch: httpFetch });
        created = (model) => client.messages(model);
        break;
      }
      case 'gemini': {
        const client = createGoogleGenerativeAI({ baseURL, apiKey: resolved.apiKey ?? '', headers, fetch: httpFetch });
        created = (model) => client.chat(model);
        break;
      }
    }
    factories.set(resolved.name, created);
    return created;
  }

  function getLanguageModel(modelId: string): ChatModel {
    const ref = parseModelId(modelId);
    return factory(provider(ref.provider))(ref.model);
  }

  /** Never throws for an upstream problem: an unreachable provider is reported as such. */
  async function checkStatus(name: ProviderName): Promise<ProviderStatus> {
    const resolved = provider(name);
    const started = performance.now();
    try {
      const models = await discoverModels(resolved, { timeoutMs: discoveryTimeoutMs, secrets });
      return {
        reachable: true,
        latency_ms: Math.round(performance.now() - started),
        models: models.map((m) => m.id),
        is_local: resolved.isLocal,
        detail: null,
      };
    } catch (error) {
      const failure = error instanceof LlmProviderError ? error : toProviderError(name, error, secrets);
      return { reachable: false, latency_ms: null, models: [], is_local: resolved.isLocal, detail: failure.message };
    }
  }

  return {
    /** Configured providers, in a fixed order: ollama, openai, anthropic, gemini. */
    listProviders(): ProviderInfo[] {
      return [...providers.values()].map((p) => ({ name: p.name, is_local: p.isLocal }));
    },

    isConfigured(name: ProviderName): boolean {
      return providers.has(name);
    },

    /** Whether prompts to this provider stay on-premises (decides redaction). */
    isLocal(name: ProviderName): boolean {
      return provider(name).isLocal;
    },

    /** The provider's own model list; throws a `LlmProviderError` naming the provider when it cannot be had. */
    discoverModels(name: ProviderName, options: { signal?: AbortSignal } = {}): Promise<DiscoveredModel[]> {
      return discoverModels(provider(name), { timeoutMs: discoveryTimeoutMs, secrets, signal: options.signal });
    },

    checkStatus,

    /** Every configured provider's status, checked in parallel. */
    async checkAllStatuses(): Promise<Array<ProviderStatus & { name: ProviderName }>> {
      const names = [...providers.keys()];
      const statuses = await Promise.all(names.map((name) => checkStatus(name)));
      return statuses.map((status, index) => ({ name: names[index], ...status }));
    },

    getLanguageModel,

    /**
     * Stream one model call. A bad or unconfigured model id throws here (a client error); everything that goes wrong
     * upstream arrives as an `error` event instead.
     */
    streamChat(request: StreamChatRequest): AsyncIterable<ChatStreamEvent> {
      const { modelId, timeoutMs, ...options } = request;
      const ref = parseModelId(modelId);
      const model = getLanguageModel(modelId);
      return streamModel(model, ref.provider, { ...options, timeoutMs: timeoutMs ?? config.requestTimeoutMs }, secrets);
    },
  };
}

export type ProviderRegistry = ReturnType<typeof createProviderRegistry>;

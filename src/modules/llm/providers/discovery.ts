import { z } from 'zod';
import {
  ProviderRequestError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  sanitizeMessage,
  upstreamErrorText,
} from './errors.js';
import type { ProviderName } from './model-id.js';
import type { ResolvedProvider } from './provider-config.js';

export interface DiscoveredModel {
  /** `provider/model` */
  id: string;
  provider: ProviderName;
  name: string;
  is_local: boolean;
  context_window: number | null;
}

const ollamaTags = z.object({ models: z.array(z.object({ name: z.string() })) });
// vLLM adds `max_model_len`; OpenAI and most compatible servers send only ids.
const openaiModels = z.object({ data: z.array(z.object({ id: z.string(), max_model_len: z.number().optional() })) });
const anthropicModels = z.object({
  data: z.array(z.object({ id: z.string(), display_name: z.string().optional(), max_input_tokens: z.number().optional() })),
});
const geminiModels = z.object({
  models: z.array(
    z.object({
      name: z.string(),
      displayName: z.string().optional(),
      inputTokenLimit: z.number().optional(),
      supportedGenerationMethods: z.array(z.string()).optional(),
    }),
  ),
});

/** Context windows of well-known hosted models, for listings that do not report one. */
const KNOWN_CONTEXT_WINDOWS: Array<[RegExp, number]> = [
  [/^gpt-4\.1/, 1_047_576],
  [/^gpt-5/, 400_000],
  [/^gpt-4o|^gpt-4-turbo|^o1-mini/, 128_000],
  [/^o[134](-|$)/, 200_000],
  [/^gpt-3\.5-turbo/, 16_385],
  [/^claude-/, 200_000],
];

export function knownContextWindow(model: string): number | null {
  for (const [pattern, window] of KNOWN_CONTEXT_WINDOWS) if (pattern.test(model)) return window;
  return null;
}

/** List a provider's models from its own API within `timeoutMs`; failures become this layer's errors. */
export async function discoverModels(
  provider: ResolvedProvider,
  options: { timeoutMs: number; secrets: readonly string[]; signal?: AbortSignal },
): Promise<DiscoveredModel[]> {
  const model = (name: string, displayName: string, contextWindow: number | null | undefined): DiscoveredModel => ({
    id: `${provider.name}/${name}`,
    provider: provider.name,
    name: displayName,
    is_local: provider.isLocal,
    context_window: contextWindow ?? knownContextWindow(name),
  });

  switch (provider.name) {
    case 'ollama': {
      // Ollama's context length is per model file (`/api/show`); the listing does not carry it.
      const body = await getJson(provider, `${provider.baseUrl}/tags`, {}, ollamaTags, options);
      return body.models.map((entry) => ({ ...model(entry.name, entry.name, null), context_window: null }));
    }
    case 'openai': {
      const headers: Record<string, string> = provider.apiKey ? { authorization: `Bearer ${provider.apiKey}` } : {};
      const body = await getJson(provider, `${provider.baseUrl}/models`, headers, openaiModels, options);
      return body.data.map((entry) => model(entry.id, entry.id, entry.max_model_len));
    }
    case 'anthropic': {
      const headers = { 'x-api-key': provider.apiKey ?? '', 'anthropic-version': '2023-06-01' };
      const body = await getJson(provider, `${provider.baseUrl}/models?limit=1000`, headers, anthropicModels, options);
      return body.data.map((entry) => model(entry.id, entry.display_name ?? entry.id, entry.max_input_tokens));
    }
    case 'gemini': {
      const headers = { 'x-goog-api-key': provider.apiKey ?? '' };
      const body = await getJson(provider, `${provider.baseUrl}/models?pageSize=1000`, headers, geminiModels, options);
      return body.models
        .filter((entry) => entry.supportedGenerationMethods?.includes('generateContent') ?? true)
        .map((entry) => {
          const name = entry.name.replace(/^models\//, '');
          return model(name, entry.displayName ?? name, entry.inputTokenLimit);
        });
    }
  }
}

async function getJson<T>(
  provider: ResolvedProvider,
  url: string,
  headers: Record<string, string>,
  schema: z.ZodType<T>,
  options: { timeoutMs: number; secrets: readonly string[]; signal?: AbortSignal },
): Promise<T> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? anySignal([options.signal, timeout]) : timeout;
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { headers: { accept: 'application/json', ...provider.headers, ...headers }, signal });
    text = await response.text();
  } catch (error) {
    if (timeout.aborted) throw new ProviderTimeoutError(provider.name, 'first_token', options.timeoutMs);
    if (options.signal?.aborted) throw error;
    throw new ProviderUnavailableError(provider.name, sanitizeMessage(connectionReason(error), options.secrets));
  }
  if (!response.ok) {
    const reason = upstreamErrorText(text) ?? (text.slice(0, 200) || 'empty response');
    throw new ProviderRequestError(provider.name, response.status, sanitizeMessage(reason, options.secrets));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ProviderRequestError(provider.name, response.status, 'the model list is not JSON');
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new ProviderRequestError(provider.name, response.status, 'unexpected model list format');
  return result.data;
}

/** `AbortSignal.any` arrived in Node 20.3; this keeps the layer working on every Node 20. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  return controller.signal;
}

function connectionReason(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string') {
    return `cannot connect (${cause.code})`;
  }
  return error instanceof Error ? error.message : 'cannot connect';
}

import { UpstreamError } from '../../lib/errors.js';
import { httpFetch } from './providers/http-fetch.js';
import { parseModelId, type ProviderName } from './providers/model-id.js';
import { configuredSecrets, resolveProviders, type LlmProvidersConfig, type ResolvedProvider } from './providers/provider-config.js';

/**
 * Embeddings over HTTP, in each provider's own wire format: OpenAI-compatible `POST {base}/embeddings`
 * (`{model, input: [...]}` → `data[].embedding`), Ollama's native `POST /api/embed` (`{model, input: [...]}` →
 * `embeddings`), Gemini's `models/{model}:batchEmbedContents`. Batched, each request bounded by a timeout, retried
 * with backoff on 429, 5xx and network failures; a response that is not one finite, non-zero vector of one dimension
 * per input is an error (never stored as a zero vector). Error messages are scrubbed of configured secrets.
 */
export interface EmbeddingClient {
  /** `provider/model` as configured (EMBEDDING_MODEL). */
  readonly modelId: string;
  readonly provider: ProviderName;
  /** On-premises provider: content of any label may be sent. Otherwise the cloud rules (redaction, CLOUD_MAX_LABEL) apply. */
  readonly isLocal: boolean;
  embed(texts: readonly string[], options?: { signal?: AbortSignal }): Promise<number[][]>;
}

export interface EmbeddingClientOptions {
  modelId: string;
  providers: LlmProvidersConfig;
  /** Per HTTP request. */
  timeoutMs: number;
  /** Inputs per request. */
  batchSize?: number;
  /** Retries after the first attempt, for 429, 5xx and network failures. */
  retries?: number;
  fetch?: typeof fetch;
}

export class EmbeddingConfigError extends Error {}

const DEFAULT_BATCH = 64;
const DEFAULT_RETRIES = 2;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function vector(value: unknown): number[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  let norm = 0;
  for (const x of value) {
    if (typeof x !== 'number' || !Number.isFinite(x)) return undefined;
    norm += x * x;
  }
  return norm > 0 ? (value as number[]) : undefined;
}

interface WireRequest {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  parse(json: unknown): unknown[] | undefined;
}

function wireRequest(provider: ResolvedProvider, model: string, inputs: readonly string[]): WireRequest {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...provider.headers };
  switch (provider.name) {
    case 'openai':
      if (provider.apiKey) headers.authorization = `Bearer ${provider.apiKey}`;
      return {
        url: `${provider.baseUrl}/embeddings`,
        headers,
        body: { model, input: inputs, encoding_format: 'float' },
        parse: (json) => {
          if (!isRecord(json) || !Array.isArray(json.data)) return undefined;
          const out: unknown[] = [];
          for (const item of json.data) {
            if (!isRecord(item)) return undefined;
            const index = typeof item.index === 'number' ? item.index : out.length;
            out[index] = item.embedding;
          }
          return out;
        },
      };
    case 'ollama':
      return {
        url: `${provider.baseUrl}/embed`,
        headers,
        body: { model, input: inputs, truncate: true },
        parse: (json) => (isRecord(json) && Array.isArray(json.embeddings) ? json.embeddings : undefined),
      };
    case 'gemini':
      if (provider.apiKey) headers['x-goog-api-key'] = provider.apiKey;
      return {
        url: `${provider.baseUrl}/models/${encodeURIComponent(model)}:batchEmbedContents`,
        headers,
        body: { requests: inputs.map((text) => ({ model: `models/${model}`, content: { parts: [{ text }] } })) },
        parse: (json) => (isRecord(json) && Array.isArray(json.embeddings) ? json.embeddings.map((item) => (isRecord(item) ? item.values : undefined)) : undefined),
      };
    case 'anthropic':
      throw new EmbeddingConfigError('Anthropic has no embeddings API');
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Builds the client for EMBEDDING_MODEL; throws EmbeddingConfigError when the model's provider is not configured. */
export function createEmbeddingClient(options: EmbeddingClientOptions): EmbeddingClient {
  const { provider: providerName, model } = parseModelId(options.modelId);
  const provider = resolveProviders(options.providers).find((candidate) => candidate.name === providerName);
  if (!provider) throw new EmbeddingConfigError(`the provider "${providerName}" of EMBEDDING_MODEL is not configured (its base URL or API key)`);
  wireRequest(provider, model, []);
  const secrets = configuredSecrets(options.providers);
  const doFetch = options.fetch ?? httpFetch;
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH);
  const retries = Math.max(0, options.retries ?? DEFAULT_RETRIES);
  const scrub = (text: string) => secrets.reduce((out, secret) => out.split(secret).join('***'), text).slice(0, 300);
  const fail = (message: string) => new UpstreamError(`embedding model ${options.modelId}`, scrub(`Embedding request to ${provider.name} failed: ${message}`));

  async function batch(inputs: readonly string[], signal: AbortSignal | undefined): Promise<number[][]> {
    const request = wireRequest(provider!, model, inputs);
    let lastError: Error | undefined;
    for (let attempt = 0; attempt <= retries; attempt += 1) {
      if (attempt > 0) await sleep(250 * 2 ** (attempt - 1));
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      try {
        response = await doFetch(request.url, { method: 'POST', headers: request.headers, body: JSON.stringify(request.body), signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      } catch (error) {
        if (signal?.aborted) throw error;
        lastError = fail(timeout.aborted ? `no answer within ${options.timeoutMs} ms` : (error as Error).message);
        continue;
      }
      const text = await response.text().catch(() => '');
      if (response.status === 429 || response.status >= 500) {
        lastError = fail(`HTTP ${response.status}`);
        continue;
      }
      if (!response.ok) throw fail(`HTTP ${response.status} ${text.slice(0, 200)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw fail('the response is not JSON');
      }
      const raw = request.parse(json);
      const vectors = raw?.map(vector);
      if (!vectors || vectors.length !== inputs.length || vectors.some((item) => item === undefined)) throw fail('the response does not hold one non-zero vector per input');
      const dimensions = vectors[0]!.length;
      if (vectors.some((item) => item!.length !== dimensions)) throw fail('the vectors differ in dimension');
      return vectors as number[][];
    }
    throw lastError ?? fail('no attempt was made');
  }

  return {
    modelId: options.modelId,
    provider: provider.name,
    isLocal: provider.isLocal,
    async embed(texts, embedOptions) {
      const out: number[][] = [];
      for (let start = 0; start < texts.length; start += batchSize) {
        out.push(...(await batch(texts.slice(start, start + batchSize), embedOptions?.signal)));
      }
      return out;
    },
  };
}

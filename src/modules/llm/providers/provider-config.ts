import type { ProviderName } from './model-id.js';

/** The provider part of the configuration; `AppConfig['llm']` satisfies it. */
export interface LlmProvidersConfig {
  /** Ollama's root URL (`http://localhost:11434`); undefined: no Ollama. */
  ollamaBaseUrl?: string;
  openaiBaseUrl?: string;
  openaiApiKey?: string;
  /** The OpenAI-compatible server runs on-premises, so its models count as local. */
  openaiLocal: boolean;
  anthropicBaseUrl?: string;
  anthropicApiKey?: string;
  geminiApiKey?: string;
  geminiBaseUrl?: string;
  /** Default for chat: the longest wait for the first chunk, and between two chunks. */
  requestTimeoutMs: number;
  /** Bound on model listing and status checks (default: the smaller of 5 s and `requestTimeoutMs`). */
  discoveryTimeoutMs?: number;
}

/** One configured provider, with every URL normalized to what its client expects. */
export interface ResolvedProvider {
  name: ProviderName;
  isLocal: boolean;
  /** The base URL handed to the AI SDK client, e.g. `http://h:11434/api`, `https://api.openai.com/v1`. */
  baseUrl: string;
  apiKey: string | undefined;
  /** Sent with every request: Basic auth taken out of a base URL (`http://user:pass@host`), which fetch refuses. */
  headers: Record<string, string>;
}

export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com/v1';
export const GEMINI_DEFAULT_BASE_URL = 'https://generativelanguage.googleapis.com/v1beta';

const nonEmpty = (value: string | undefined): string | undefined =>
  value !== undefined && value.trim() !== '' ? value.trim() : undefined;

/**
 * Strip trailing slashes and, when the URL is a bare origin, add the API's version path: operators write
 * `http://vllm:8000` as often as `http://vllm:8000/v1`, and Anthropic's own SDKs take the bare origin.
 */
export function withVersionPath(url: string, versionPath: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return new URL(trimmed).pathname === '/' ? `${trimmed}${versionPath}` : trimmed;
}

/** Ollama's native API lives under `/api`; accept the root with or without it. */
export function ollamaApiUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/api') ? trimmed : `${trimmed}/api`;
}

/** Move `user:pass@` out of a URL into an Authorization header. */
export function splitCredentials(url: string): { url: string; headers: Record<string, string>; secrets: string[] } {
  const parsed = new URL(url);
  if (parsed.username === '' && parsed.password === '') return { url, headers: {}, secrets: [] };
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  const basic = Buffer.from(`${user}:${password}`).toString('base64');
  parsed.username = '';
  parsed.password = '';
  return {
    url: parsed.toString().replace(/\/+$/, ''),
    headers: { authorization: `Basic ${basic}` },
    secrets: [password, basic].filter((secret) => secret !== ''),
  };
}

/**
 * Which providers are configured. Ollama: a base URL is set. OpenAI and Anthropic: an API key, or a base URL other
 * than the vendor's (a keyless compatible server or gateway). Gemini: an API key.
 */
export function resolveProviders(config: LlmProvidersConfig): ResolvedProvider[] {
  const providers: ResolvedProvider[] = [];
  const add = (name: ProviderName, isLocal: boolean, url: string, apiKey: string | undefined): void => {
    const { url: baseUrl, headers } = splitCredentials(url);
    providers.push({ name, isLocal, baseUrl, apiKey, headers });
  };

  const ollama = nonEmpty(config.ollamaBaseUrl);
  if (ollama !== undefined) add('ollama', true, ollamaApiUrl(ollama), undefined);

  const openaiKey = nonEmpty(config.openaiApiKey);
  const openaiUrl = withVersionPath(nonEmpty(config.openaiBaseUrl) ?? OPENAI_DEFAULT_BASE_URL, '/v1');
  if (openaiKey !== undefined || openaiUrl !== OPENAI_DEFAULT_BASE_URL) {
    add('openai', config.openaiLocal, openaiUrl, openaiKey);
  }

  const anthropicKey = nonEmpty(config.anthropicApiKey);
  const anthropicUrl = withVersionPath(nonEmpty(config.anthropicBaseUrl) ?? ANTHROPIC_DEFAULT_BASE_URL, '/v1');
  if (anthropicKey !== undefined || anthropicUrl !== ANTHROPIC_DEFAULT_BASE_URL) {
    add('anthropic', false, anthropicUrl, anthropicKey);
  }

  const geminiKey = nonEmpty(config.geminiApiKey);
  if (geminiKey !== undefined) {
    add('gemini', false, withVersionPath(nonEmpty(config.geminiBaseUrl) ?? GEMINI_DEFAULT_BASE_URL, '/v1beta'), geminiKey);
  }
  return providers;
}

/** Every configured secret (API keys, passwords in base URLs), so error messages can be scrubbed of them. */
export function configuredSecrets(config: LlmProvidersConfig): string[] {
  const fromUrls = [config.ollamaBaseUrl, config.openaiBaseUrl, config.anthropicBaseUrl, config.geminiBaseUrl]
    .map(nonEmpty)
    .flatMap((url) => (url === undefined ? [] : splitCredentials(url).secrets));
  const keys = [config.openaiApiKey, config.anthropicApiKey, config.geminiApiKey]
    .map(nonEmpty)
    .filter((secret): secret is string => secret !== undefined);
  return [...keys, ...fromUrls];
}

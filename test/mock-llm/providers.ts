import type { LlmProvidersConfig } from '../../src/modules/llm/providers/index.js';

export interface MockProviderKeys {
  openai: string;
  anthropic: string;
  gemini: string;
}

/** Every provider pointed at one mock server, each with its own key (OpenAI counted as cloud unless overridden). */
export function mockProvidersConfig(url: string, keys: MockProviderKeys, overrides: Partial<LlmProvidersConfig> = {}): LlmProvidersConfig {
  return {
    ollamaBaseUrl: url,
    openaiBaseUrl: `${url}/v1`,
    openaiApiKey: keys.openai,
    openaiLocal: false,
    anthropicBaseUrl: url,
    anthropicApiKey: keys.anthropic,
    geminiApiKey: keys.gemini,
    geminiBaseUrl: url,
    requestTimeoutMs: 5000,
    ...overrides,
  };
}

import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockProvidersConfig } from '../../../../test/mock-llm/providers.js';
import { startMockLlm, unusedPort, type MockLlm } from '../../../../test/mock-llm/server.js';
import { loadConfig } from '../../../config.js';
import {
  createProviderRegistry,
  ProviderNotConfiguredError,
  ProviderRequestError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  type LlmProvidersConfig,
} from './index.js';

const OPENAI_KEY = 'sk-test-discovery-0123456789';
const ANTHROPIC_KEY = 'anthropic-discovery-0123456789';
const GEMINI_KEY = 'gemini-discovery-0123456789';

let mock: MockLlm;
let closedPort: number;

function allProviders(url: string, overrides: Partial<LlmProvidersConfig> = {}): LlmProvidersConfig {
  return mockProvidersConfig(url, { openai: OPENAI_KEY, anthropic: ANTHROPIC_KEY, gemini: GEMINI_KEY }, { discoveryTimeoutMs: 300, ...overrides });
}

beforeAll(async () => {
  mock = await startMockLlm();
  closedPort = await unusedPort();
});

beforeEach(() => {
  mock.discovery.models = ['llama3.1:8b', 'qwen2.5:7b'];
  mock.discovery.status = null;
  mock.discovery.hang = false;
  mock.requests.length = 0;
});

afterAll(async () => {
  await mock.close();
});

describe('listProviders', () => {
  it('lists only configured providers, with where they run', () => {
    const registry = createProviderRegistry(allProviders(mock.url, { openaiLocal: true }));
    expect(registry.listProviders()).toEqual([
      { name: 'ollama', is_local: true },
      { name: 'openai', is_local: true },
      { name: 'anthropic', is_local: false },
      { name: 'gemini', is_local: false },
    ]);
  });

  it('is built from the application configuration as parsed from the environment', () => {
    const config = loadConfig({ OPENAI_API_KEY: OPENAI_KEY, GEMINI_API_KEY: GEMINI_KEY });
    const registry = createProviderRegistry(config.llm);
    expect(registry.listProviders()).toEqual([
      { name: 'ollama', is_local: true },
      { name: 'openai', is_local: false },
      { name: 'gemini', is_local: false },
    ]);
  });

  it('treats a provider without configuration as absent', () => {
    const registry = createProviderRegistry({ openaiApiKey: OPENAI_KEY, openaiLocal: false, requestTimeoutMs: 1000 });
    expect(registry.listProviders()).toEqual([{ name: 'openai', is_local: false }]);
    expect(registry.isConfigured('ollama')).toBe(false);
    expect(() => registry.getLanguageModel('ollama/llama3.1:8b')).toThrow(ProviderNotConfiguredError);
  });
});

describe('discoverModels', () => {
  it("reads each provider's own model list", async () => {
    const registry = createProviderRegistry(allProviders(mock.url));

    await expect(registry.discoverModels('ollama')).resolves.toEqual([
      { id: 'ollama/llama3.1:8b', provider: 'ollama', name: 'llama3.1:8b', is_local: true, context_window: null },
      { id: 'ollama/qwen2.5:7b', provider: 'ollama', name: 'qwen2.5:7b', is_local: true, context_window: null },
    ]);
    mock.discovery.models = ['gpt-4o-mini', 'my-finetune'];
    await expect(registry.discoverModels('openai')).resolves.toEqual([
      { id: 'openai/gpt-4o-mini', provider: 'openai', name: 'gpt-4o-mini', is_local: false, context_window: 128_000 },
      { id: 'openai/my-finetune', provider: 'openai', name: 'my-finetune', is_local: false, context_window: null },
    ]);
    mock.discovery.models = ['claude-sonnet-4-5'];
    await expect(registry.discoverModels('anthropic')).resolves.toEqual([
      {
        id: 'anthropic/claude-sonnet-4-5',
        provider: 'anthropic',
        name: 'claude-sonnet-4-5',
        is_local: false,
        context_window: 200_000,
      },
    ]);
    mock.discovery.models = ['gemini-2.5-flash'];
    await expect(registry.discoverModels('gemini')).resolves.toEqual([
      {
        id: 'gemini/gemini-2.5-flash',
        provider: 'gemini',
        name: 'gemini-2.5-flash',
        is_local: false,
        context_window: 1_048_576,
      },
    ]);

    const paths = mock.requests.map((request) => `${request.method} ${request.path}`);
    expect(paths).toEqual(['GET /api/tags', 'GET /v1/models', 'GET /v1/models', 'GET /v1beta/models']);
    expect(mock.requests[1].headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(mock.requests[2].headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(mock.requests[3].headers['x-goog-api-key']).toBe(GEMINI_KEY);
  });

  it('names an unreachable provider without throwing anything else', async () => {
    const registry = createProviderRegistry(allProviders(mock.url, { ollamaBaseUrl: `http://127.0.0.1:${closedPort}` }));
    const failure = await registry.discoverModels('ollama').catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ProviderUnavailableError);
    expect(failure).toMatchObject({ provider: 'ollama', status: 503 });
    expect((failure as Error).message).toMatch(/^LLM provider ollama is unavailable/);
  });

  it('reports an upstream refusal without the API key', async () => {
    mock.discovery.status = 401;
    const registry = createProviderRegistry(allProviders(mock.url));
    const failure = await registry.discoverModels('openai').catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ProviderRequestError);
    expect(failure).toMatchObject({ provider: 'openai', upstreamStatus: 401 });
    expect(JSON.stringify(failure) + String(failure)).not.toContain(OPENAI_KEY);
  });

  it('gives up on a provider that does not answer within the discovery timeout', async () => {
    mock.discovery.hang = true;
    const registry = createProviderRegistry(allProviders(mock.url));
    const started = performance.now();
    const failure = await registry.discoverModels('anthropic').catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ProviderTimeoutError);
    expect(performance.now() - started).toBeLessThan(1000);
    await mock.requests[0].closed;
    expect(mock.requests[0].aborted).toBe(true);
  });
});

describe('checkStatus', () => {
  it('reports each provider, one unreachable, without breaking the others', async () => {
    const registry = createProviderRegistry(
      allProviders(mock.url, { ollamaBaseUrl: `http://127.0.0.1:${closedPort}`, openaiLocal: true }),
    );
    const statuses = await registry.checkAllStatuses();

    expect(statuses.map((status) => [status.name, status.reachable])).toEqual([
      ['ollama', false],
      ['openai', true],
      ['anthropic', true],
      ['gemini', true],
    ]);
    const [ollama, openai] = statuses;
    expect(ollama).toMatchObject({ latency_ms: null, models: [], is_local: true });
    expect(ollama.detail).toContain('ollama');
    expect(openai).toMatchObject({ is_local: true, detail: null, models: ['openai/llama3.1:8b', 'openai/qwen2.5:7b'] });
    expect(openai.latency_ms).toBeGreaterThanOrEqual(0);
    expect(openai.latency_ms).toBeLessThan(300);
  });

  it('reports a provider that answers with an error as unreachable, with the reason', async () => {
    mock.discovery.status = 503;
    const registry = createProviderRegistry(allProviders(mock.url));
    const status = await registry.checkStatus('gemini');

    expect(status).toMatchObject({ reachable: false, latency_ms: null, models: [], is_local: false });
    expect(status.detail).toContain('503');
    expect(status.detail).not.toContain(GEMINI_KEY);
  });
});

describe('base URLs', () => {
  it('accepts bare origins and credentials in the URL, sending them as Basic auth', async () => {
    const url = new URL(mock.url);
    const registry = createProviderRegistry({
      ollamaBaseUrl: `http://ops:s3cr%40t@${url.host}/`,
      openaiBaseUrl: mock.url,
      openaiLocal: true,
      requestTimeoutMs: 1000,
    });
    await registry.discoverModels('ollama');
    await registry.discoverModels('openai');

    expect(mock.requests.map((request) => request.path)).toEqual(['/api/tags', '/v1/models']);
    expect(mock.requests[0].headers.authorization).toBe(`Basic ${Buffer.from('ops:s3cr@t').toString('base64')}`);
  });
});

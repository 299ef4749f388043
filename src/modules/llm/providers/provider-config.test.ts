import { describe, expect, it } from 'vitest';
import { sanitizeMessage } from './errors.js';
import { configuredSecrets, resolveProviders, type LlmProvidersConfig } from './provider-config.js';

const base: LlmProvidersConfig = { openaiLocal: false, requestTimeoutMs: 1000 };

describe('resolveProviders', () => {
  it('configures nothing from an empty configuration', () => {
    expect(resolveProviders(base)).toEqual([]);
  });

  it('configures OpenAI from a key alone, at the vendor URL', () => {
    expect(resolveProviders({ ...base, openaiApiKey: 'sk-abc' })).toEqual([
      { name: 'openai', isLocal: false, baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-abc', headers: {} },
    ]);
  });

  it('configures a keyless OpenAI-compatible server from its URL, adding /v1 to a bare origin', () => {
    expect(resolveProviders({ ...base, openaiBaseUrl: 'http://vllm:8000', openaiLocal: true })).toEqual([
      { name: 'openai', isLocal: true, baseUrl: 'http://vllm:8000/v1', apiKey: undefined, headers: {} },
    ]);
    expect(resolveProviders({ ...base, openaiBaseUrl: 'http://lmstudio:1234/v1/' })[0].baseUrl).toBe(
      'http://lmstudio:1234/v1',
    );
  });

  it('does not configure OpenAI from the vendor URL without a key', () => {
    expect(resolveProviders({ ...base, openaiBaseUrl: 'https://api.openai.com/v1' })).toEqual([]);
  });

  it('points Ollama at its native /api and Anthropic at /v1, whichever form the URL takes', () => {
    const providers = resolveProviders({
      ...base,
      ollamaBaseUrl: 'http://localhost:11434/',
      anthropicApiKey: 'k',
      anthropicBaseUrl: 'https://api.anthropic.com',
    });
    expect(providers.map((p) => [p.name, p.baseUrl, p.isLocal])).toEqual([
      ['ollama', 'http://localhost:11434/api', true],
      ['anthropic', 'https://api.anthropic.com/v1', false],
    ]);
    expect(resolveProviders({ ...base, ollamaBaseUrl: 'http://o:11434/api' })[0].baseUrl).toBe('http://o:11434/api');
  });

  it('needs a key for Gemini and keeps cloud providers non-local', () => {
    expect(resolveProviders({ ...base, geminiBaseUrl: 'http://g' })).toEqual([]);
    expect(resolveProviders({ ...base, geminiApiKey: 'g-key' })).toEqual([
      {
        name: 'gemini',
        isLocal: false,
        baseUrl: 'https://generativelanguage.googleapis.com/v1beta',
        apiKey: 'g-key',
        headers: {},
      },
    ]);
  });

  it('moves URL credentials into a header and counts them as secrets', () => {
    const config = { ...base, ollamaBaseUrl: 'http://user:pa%3Ass@ollama:11434' };
    const [ollama] = resolveProviders(config);
    expect(ollama.baseUrl).toBe('http://ollama:11434/api');
    expect(ollama.headers).toEqual({ authorization: `Basic ${Buffer.from('user:pa:ss').toString('base64')}` });
    expect(configuredSecrets(config)).toContain('pa:ss');
  });
});

describe('sanitizeMessage', () => {
  it('masks configured secrets and key-shaped tokens, and bounds the length', () => {
    const secrets = ['my-very-private-key'];
    expect(sanitizeMessage('bad key my-very-private-key given', secrets)).toBe('bad key [REDACTED] given');
    expect(sanitizeMessage('Incorrect API key provided: sk-proj-abc***************wxyz.', [])).toBe(
      'Incorrect API key provided: [REDACTED].',
    );
    expect(sanitizeMessage('header was Bearer abcdefghijklmnop', [])).toBe('header was [REDACTED]');
    expect(sanitizeMessage('x'.repeat(1000), []).length).toBeLessThanOrEqual(301);
  });
});

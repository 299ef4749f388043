import { describe, expect, it } from 'vitest';
import { formatModelId, InvalidModelIdError, parseModelId } from './model-id.js';

describe('parseModelId', () => {
  it.each([
    ['ollama/llama3.1:8b', 'ollama', 'llama3.1:8b'],
    ['openai/gpt-4o-mini', 'openai', 'gpt-4o-mini'],
    ['openai/meta-llama/Llama-3.1-8B-Instruct', 'openai', 'meta-llama/Llama-3.1-8B-Instruct'],
    ['ollama/hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M', 'ollama', 'hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M'],
    ['anthropic/claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5'],
    ['gemini/gemini-2.5-flash', 'gemini', 'gemini-2.5-flash'],
  ])('%s → %s + %s', (id, provider, model) => {
    expect(parseModelId(id)).toEqual({ provider, model });
    expect(formatModelId({ provider: parseModelId(id).provider, model })).toBe(id);
  });

  it.each([
    ['llama3.1', /provider\/model/],
    ['mistral/large', /unknown provider/],
    ['Ollama/llama3', /unknown provider/],
    ['ollama/', /empty/],
    ['ollama/ llama3', /spaces/],
    ['ollama/llama\n3', /control/],
  ])('rejects %j', (id, reason) => {
    expect(() => parseModelId(id)).toThrow(InvalidModelIdError);
    expect(() => parseModelId(id)).toThrow(reason);
  });

  it('is a 422 validation error naming the id', () => {
    const error = (() => {
      try {
        parseModelId('nope');
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toMatchObject({ status: 422, modelId: 'nope' });
  });
});

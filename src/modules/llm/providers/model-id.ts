import { ValidationError } from '../../../lib/errors.js';

export const PROVIDER_NAMES = ['ollama', 'openai', 'anthropic', 'gemini'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export interface ModelRef {
  provider: ProviderName;
  /** The provider's own model name; may itself contain `/` or `:` (`hf.co/org/repo:Q4_K_M`). */
  model: string;
}

export class InvalidModelIdError extends ValidationError {
  constructor(
    readonly modelId: string,
    reason: string,
  ) {
    super(`Invalid model id "${modelId.slice(0, 200)}": ${reason}`);
  }
}

export function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}

/** `ollama/llama3.1:8b` → `{ provider: 'ollama', model: 'llama3.1:8b' }`; only the first `/` separates. */
export function parseModelId(modelId: string): ModelRef {
  const slash = modelId.indexOf('/');
  if (slash < 0) throw new InvalidModelIdError(modelId, 'expected provider/model, e.g. ollama/llama3.1:8b');
  const provider = modelId.slice(0, slash);
  const model = modelId.slice(slash + 1);
  if (!isProviderName(provider)) {
    throw new InvalidModelIdError(modelId, `unknown provider; expected one of ${PROVIDER_NAMES.join(', ')}`);
  }
  if (model.trim() === '' || model !== model.trim()) {
    throw new InvalidModelIdError(modelId, 'the model name is empty or has surrounding spaces');
  }
  if ([...model].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)) {
    throw new InvalidModelIdError(modelId, 'the model name has control characters');
  }
  return { provider, model };
}

export function formatModelId(ref: ModelRef): string {
  return `${ref.provider}/${ref.model}`;
}

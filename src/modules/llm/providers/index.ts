export { createProviderRegistry } from './registry.js';
export type { ProviderInfo, ProviderRegistry, ProviderStatus, StreamChatRequest } from './registry.js';
export { streamModel } from './stream-chat.js';
export type { ChatModel, ChatResponseFormat, ChatStreamEvent, ChatToolDefinition, StreamChatOptions, TokenUsage } from './stream-chat.js';
export { discoverModels, knownContextWindow } from './discovery.js';
export type { DiscoveredModel } from './discovery.js';
export { formatModelId, InvalidModelIdError, isProviderName, parseModelId, PROVIDER_NAMES } from './model-id.js';
export type { ModelRef, ProviderName } from './model-id.js';
export {
  InvalidToolCallError,
  LlmProviderError,
  ProviderNotConfiguredError,
  ProviderRequestError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  sanitizeMessage,
  toProviderError,
} from './errors.js';
export type { LlmProviderErrorCode, TimeoutPhase } from './errors.js';
export { resolveProviders } from './provider-config.js';
export type { LlmProvidersConfig, ResolvedProvider } from './provider-config.js';
export { routeSdkWarnings } from './sdk-warnings.js';

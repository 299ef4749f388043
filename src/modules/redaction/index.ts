export { detectPii, PII_TYPES } from './detectors.js';
export type { PiiEntity, PiiType } from './detectors.js';
export { createStreamingRestorer, PlaceholderVault, redactText } from './redactor.js';
export type {
  PiiCounts,
  RedactedEntity,
  RedactTextResult,
  StreamingRestorer,
  VaultEntry,
  VaultRedaction,
  VaultSnapshot,
} from './redactor.js';

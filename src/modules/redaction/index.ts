export { detectPii, PII_TYPES } from './detectors.js';
export type { PiiEntity, PiiType } from './detectors.js';
export {
  DEFAULT_REDACTION_POLICY,
  labelRaisingTypes,
  parsePiiTypeList,
  raisesDocumentLabel,
  RedactionFailedError,
} from './policy.js';
export type { RedactionPolicy } from './policy.js';
export { createStreamingRestorer, detectWithinBudget, loadRedactionData, PlaceholderVault, redactText } from './redactor.js';
export type {
  PiiCounts,
  RedactedEntity,
  RedactTextResult,
  StreamingRestorer,
  VaultEntry,
  VaultRedaction,
  VaultSnapshot,
} from './redactor.js';

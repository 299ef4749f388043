export {
  KeyringError,
  MASTER_KEY_BYTES,
  createKeyring,
  generateKey,
  generateKeyringEntry,
  isValidKeyId,
  parseKeyring,
  type Keyring,
  type KeyringEntry,
  type MasterKey,
} from './keyring.js';
export { DecryptionError, createFieldCipher, isFieldCiphertext, type DecryptionErrorCode, type FieldCipher } from './envelope.js';
export { FINGERPRINT_PREFIX, createValueFingerprinter, deriveKey, sha256Hex, timingSafeEqualStrings, type ValueFingerprinter } from './hmac.js';
export {
  ChainEventError,
  GENESIS_HASH,
  HASHED_EVENT_FIELDS,
  canonicalEventJson,
  computeEventHash,
  createChainVerifier,
  hashedEventFields,
  verifyChain,
  type ChainAnchor,
  type ChainEvent,
  type ChainFailure,
  type ChainFailureKind,
  type ChainVerification,
  type ChainVerifier,
  type HashedEventField,
  type HashedEventFields,
  type VerifyChainOptions,
} from './hash-chain.js';
export {
  generateSigningKeyPair,
  publicKeyPemOf,
  signCheckpoint,
  signingKeyId,
  verifyCheckpoint,
  type CheckpointPayload,
  type SignedCheckpoint,
  type SigningKeyPair,
} from './checkpoint.js';

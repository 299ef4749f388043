import { createValueFingerprinter, deriveKey, sha256Hex, type ValueFingerprinter } from '../../lib/crypto/hmac.js';

/** What an audit event may say about a prompt. */
export type PromptDigest = { prompt_length: number; prompt_sha256: string } | { prompt: string };

/**
 * Prompts are personal data: by default the trail keeps only their length and SHA-256 (enough to prove which prompt
 * was sent, given the transcript), and the text itself only when the operator set AUDIT_LOG_PROMPTS=true.
 */
export function promptDigest(text: string, logPrompts: boolean): PromptDigest {
  if (logPrompts) return { prompt: text };
  return { prompt_length: text.length, prompt_sha256: sha256Hex(text) };
}

/** The HKDF purpose of the audit fingerprint key; changing it changes every fingerprint. */
export const AUDIT_FINGERPRINT_INFO = 'cdsa/audit/fingerprint/v1';

/**
 * Keyed fingerprints for audit details (`hmac-sha256:<hex>`): two events about the same value can be correlated,
 * and nobody without the server's key can test guesses against them, unlike a plain hash of a short value.
 */
export function createAuditFingerprinter(masterKey: Buffer): ValueFingerprinter {
  const key = deriveKey(masterKey, AUDIT_FINGERPRINT_INFO);
  try {
    return createValueFingerprinter(key);
  } finally {
    key.fill(0);
  }
}

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../../lib/canonical-json.js';
import { signCheckpoint, signingKeyId, verifyCheckpoint, type CheckpointPayload, type SignedCheckpoint } from '../../lib/crypto/checkpoint.js';

export type { CheckpointPayload, SignedCheckpoint };

/**
 * Checkpoints use the shared format of src/lib/crypto/checkpoint.ts: Ed25519 over the canonical JSON of
 * `{hash, key_id, seq, time}`, base64. Archive statements (retention) are signed here with the same key and encoding.
 */

/** What an archive record signs: the boundary the first live event links to after a range was archived. */
export interface ArchiveStatement {
  from_seq: number;
  to_seq: number;
  first_prev_hash: string;
  last_hash: string;
  event_count: number;
  file_sha256: string;
  archived_at: string;
}

export interface SignedArchiveStatement extends ArchiveStatement {
  key_id: string;
  signature: string;
}

/** The bytes an archive signature covers; the `type` member keeps it from ever passing as a checkpoint's. */
export function archiveMessage(statement: ArchiveStatement & { key_id: string }): Buffer {
  return Buffer.from(
    canonicalJson({
      type: 'cdsa.audit.archive',
      key_id: statement.key_id,
      from_seq: statement.from_seq,
      to_seq: statement.to_seq,
      first_prev_hash: statement.first_prev_hash,
      last_hash: statement.last_hash,
      event_count: statement.event_count,
      file_sha256: statement.file_sha256,
      archived_at: statement.archived_at,
    }),
    'utf8',
  );
}

export interface AuditVerifyingKey {
  keyId: string;
  publicKey: KeyObject;
  publicKeyPem: string;
}

export function verifyingKeyFromPem(publicKeyPem: string): AuditVerifyingKey {
  const publicKey = createPublicKey(publicKeyPem);
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new TypeError('The audit verification key must be an Ed25519 public key');
  return { keyId: signingKeyId(publicKey), publicKey, publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

export function verifyCheckpointSignature(checkpoint: SignedCheckpoint, keys: readonly AuditVerifyingKey[]): boolean {
  const key = keys.find((candidate) => candidate.keyId === checkpoint.key_id);
  return key !== undefined && verifyCheckpoint(checkpoint, key.publicKey);
}

export function verifyArchiveSignature(statement: SignedArchiveStatement, keys: readonly AuditVerifyingKey[]): boolean {
  const key = keys.find((candidate) => candidate.keyId === statement.key_id);
  if (!key || typeof statement.signature !== 'string') return false;
  try {
    return verify(null, archiveMessage(statement), key.publicKey, Buffer.from(statement.signature, 'base64'));
  } catch {
    return false;
  }
}

/** Signs with the Ed25519 key from the secrets (AUDIT_SIGNING_KEY_FILE); the private key never reaches the database. */
export function createAuditSigner(privateKeyPem: string) {
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('The audit signing key must be an Ed25519 private key');
  const verifying = verifyingKeyFromPem(createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }).toString());
  return {
    keyId: verifying.keyId,
    publicKeyPem: verifying.publicKeyPem,
    verifyingKey: verifying,
    signCheckpoint(statement: CheckpointPayload): SignedCheckpoint {
      return signCheckpoint(statement, privateKey);
    },
    signArchive(statement: ArchiveStatement): SignedArchiveStatement {
      const unsigned = { ...statement, key_id: verifying.keyId };
      return { ...unsigned, signature: sign(null, archiveMessage(unsigned), privateKey).toString('base64') };
    },
  };
}

export type AuditSigner = ReturnType<typeof createAuditSigner>;

import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateAuditSigningKeyPem } from '../../lib/secrets.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { archiveMessage, createAuditSigner, verifyArchiveSignature, verifyCheckpointSignature, verifyingKeyFromPem } from './audit.signing.js';

const statement = { seq: 42, hash: 'a'.repeat(64), time: '2026-11-26T09:00:00.000Z' };

describe('audit checkpoint signing', () => {
  const signer = createAuditSigner(generateAuditSigningKeyPem());

  it('signs canonical {hash, key_id, seq, time} with Ed25519 and verifies with the public key only', () => {
    const signed = signer.signCheckpoint(statement);
    expect(signed.key_id).toMatch(/^[0-9a-f]{16}$/);
    const publicOnly = verifyingKeyFromPem(signer.publicKeyPem);
    const message = Buffer.from(canonicalJson({ hash: signed.hash, key_id: signed.key_id, seq: signed.seq, time: signed.time }));
    expect(verify(null, message, publicOnly.publicKey, Buffer.from(signed.signature, 'base64'))).toBe(true);
    expect(publicOnly.keyId).toBe(signed.key_id);
    expect(verifyCheckpointSignature(signed, [publicOnly])).toBe(true);
    expect(verifyCheckpointSignature({ ...signed, seq: 41 }, [publicOnly])).toBe(false);
    expect(verifyCheckpointSignature({ ...signed, hash: 'b'.repeat(64) }, [publicOnly])).toBe(false);
    expect(verifyCheckpointSignature({ ...signed, signature: 'not-base64!' }, [publicOnly])).toBe(false);
  });

  it('refuses signatures by other keys and keys it was not given', () => {
    const other = createAuditSigner(generateAuditSigningKeyPem());
    const signed = other.signCheckpoint(statement);
    expect(verifyCheckpointSignature(signed, [signer.verifyingKey])).toBe(false);
    // Claiming the trusted key's id does not help a signature by another key.
    expect(verifyCheckpointSignature({ ...signed, key_id: signer.keyId }, [signer.verifyingKey])).toBe(false);
    expect(verifyCheckpointSignature(signed, [])).toBe(false);
  });

  it('keeps archive and checkpoint signatures apart', () => {
    const archive = signer.signArchive({
      from_seq: 1,
      to_seq: 42,
      first_prev_hash: '0'.repeat(64),
      last_hash: 'a'.repeat(64),
      event_count: 42,
      file_sha256: 'c'.repeat(64),
      archived_at: statement.time,
    });
    expect(verifyArchiveSignature(archive, [signer.verifyingKey])).toBe(true);
    expect(verifyArchiveSignature({ ...archive, to_seq: 43 }, [signer.verifyingKey])).toBe(false);
    expect(archiveMessage(archive).toString()).toContain('"type":"cdsa.audit.archive"');
    expect(verifyCheckpointSignature({ ...statement, key_id: archive.key_id, signature: archive.signature }, [signer.verifyingKey])).toBe(false);
  });

  it('accepts only Ed25519 keys', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => createAuditSigner(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())).toThrow(/Ed25519/);
    expect(() => verifyingKeyFromPem(publicKey.export({ format: 'pem', type: 'spki' }).toString())).toThrow(/Ed25519/);
  });
});

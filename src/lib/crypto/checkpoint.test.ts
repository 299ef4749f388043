import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../canonical-json.js';
import { generateSigningKeyPair, publicKeyPemOf, signCheckpoint, signingKeyId, verifyCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { GENESIS_HASH, computeEventHash, verifyChain, type ChainEvent } from './hash-chain.js';

const keys = generateSigningKeyPair();
const head = { seq: 1200, hash: 'ab'.repeat(32), time: '2025-03-04T05:06:07.089Z' };

describe('signing keys', () => {
  it('generates an Ed25519 PEM pair whose key id is a short hash of the public key', () => {
    expect(keys.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(keys.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(createPublicKey(keys.publicKeyPem).asymmetricKeyType).toBe('ed25519');
    expect(keys.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(signingKeyId(keys.publicKeyPem)).toBe(keys.keyId);
    expect(signingKeyId(keys.privateKeyPem)).toBe(keys.keyId);
    expect(publicKeyPemOf(keys.privateKeyPem)).toBe(keys.publicKeyPem);
    expect(generateSigningKeyPair().keyId).not.toBe(keys.keyId);
  });
});

describe('signCheckpoint / verifyCheckpoint', () => {
  it('signs {seq, hash, time} and verifies with the public key', () => {
    const checkpoint = signCheckpoint(head, keys.privateKeyPem);
    expect(checkpoint).toEqual({ ...head, key_id: keys.keyId, signature: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/) });
    expect(verifyCheckpoint(checkpoint, keys.publicKeyPem)).toBe(true);
    expect(verifyCheckpoint(JSON.parse(JSON.stringify(checkpoint)) as SignedCheckpoint, keys.publicKeyPem)).toBe(true);
  });

  it('signs the RFC 8785 JSON of the checkpoint without its signature (verifiable offline)', () => {
    const checkpoint = signCheckpoint(head, keys.privateKeyPem);
    const message = canonicalJson({ hash: head.hash, key_id: keys.keyId, seq: head.seq, time: head.time });
    expect(message).toBe(`{"hash":"${head.hash}","key_id":"${keys.keyId}","seq":1200,"time":"2025-03-04T05:06:07.089Z"}`);
    expect(verify(null, Buffer.from(message), keys.publicKeyPem, Buffer.from(checkpoint.signature, 'base64'))).toBe(true);
  });

  it('accepts a Date as the time', () => {
    const checkpoint = signCheckpoint({ ...head, time: new Date(head.time) }, keys.privateKeyPem);
    expect(checkpoint.time).toBe(head.time);
  });

  it('rejects any change to a signed checkpoint', () => {
    const checkpoint = signCheckpoint(head, keys.privateKeyPem);
    const signature = Buffer.from(checkpoint.signature, 'base64');
    signature[10]! ^= 0x01;
    const tampered: SignedCheckpoint[] = [
      { ...checkpoint, seq: 1199 },
      { ...checkpoint, hash: 'ac'.repeat(32) },
      { ...checkpoint, time: '2025-03-04T05:06:08.089Z' },
      { ...checkpoint, key_id: generateSigningKeyPair().keyId },
      { ...checkpoint, signature: signature.toString('base64') },
    ];
    for (const candidate of tampered) expect(verifyCheckpoint(candidate, keys.publicKeyPem)).toBe(false);
  });

  it("rejects a checkpoint checked against another key, and another key's signature", () => {
    const other = generateSigningKeyPair();
    const checkpoint = signCheckpoint(head, keys.privateKeyPem);
    expect(verifyCheckpoint(checkpoint, other.publicKeyPem)).toBe(false);
    // A forger signing with their own key but claiming ours.
    const forged = { ...signCheckpoint(head, other.privateKeyPem), key_id: keys.keyId };
    expect(verifyCheckpoint(forged, keys.publicKeyPem)).toBe(false);
  });

  it('returns false for malformed checkpoints instead of throwing', () => {
    const checkpoint = signCheckpoint(head, keys.privateKeyPem);
    const malformed = [
      { ...checkpoint, signature: 'not base64!' },
      { ...checkpoint, signature: `${checkpoint.signature}AAAA` },
      { ...checkpoint, seq: -1 },
      { ...checkpoint, seq: '1200' },
      { ...checkpoint, hash: 'AB'.repeat(32) },
      { ...checkpoint, time: 'yesterday' },
      { seq: 1 },
      null,
    ];
    for (const candidate of malformed) expect(verifyCheckpoint(candidate as SignedCheckpoint, keys.publicKeyPem)).toBe(false);
  });

  it('refuses to sign invalid payloads or with a non-Ed25519 key', () => {
    expect(() => signCheckpoint({ ...head, hash: 'xyz' }, keys.privateKeyPem)).toThrow(TypeError);
    expect(() => signCheckpoint({ ...head, time: '2025-03-04' }, keys.privateKeyPem)).toThrow(TypeError);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(() => signCheckpoint(head, rsa)).toThrow(/Ed25519/);
  });
});

describe('checkpoints anchor chain verification', () => {
  function chainOf(length: number): ChainEvent[] {
    const events: ChainEvent[] = [];
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= length; seq++) {
      const fields = {
        id: `id-${seq}`,
        seq,
        event_type: 'USER_QUERY',
        user_id: null,
        session_id: null,
        resource_type: null,
        resource_id: null,
        details: { n: seq },
        ip_address: null,
        user_agent: null,
        created_at: new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString(),
      };
      const hash = computeEventHash(prev, fields);
      events.push({ ...fields, prev_hash: prev, hash });
      prev = hash;
    }
    return events;
  }

  it('detects a tail deleted after the checkpoint was signed', async () => {
    const events = chainOf(20);
    const last = events[19]!;
    const checkpoint = signCheckpoint({ seq: last.seq as number, hash: last.hash, time: new Date() }, keys.privateKeyPem);
    expect(verifyCheckpoint(checkpoint, keys.publicKeyPem)).toBe(true);
    expect((await verifyChain(events, { checkpoint })).valid).toBe(true);
    const result = await verifyChain(events.slice(0, 17), { checkpoint });
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 18, head_seq: 17 });
    expect(result.failure?.kind).toBe('truncated');
  });
});

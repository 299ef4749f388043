import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';

/**
 * Signed audit checkpoints: `{seq, hash, time}` of the chain head, signed with an Ed25519 key kept outside the
 * database. Someone who can rewrite the table cannot forge one, so a checkpoint proves the chain reached `seq` with
 * that `hash` at `time` — any later truncation or rewrite before `seq` shows.
 *
 * The signature is Ed25519 over the UTF-8 canonical JSON (RFC 8785) of `{hash, key_id, seq, time}` (the checkpoint
 * without `signature`), base64-encoded. `key_id` is the first 16 hex characters of SHA-256 over the public key's
 * DER (SubjectPublicKeyInfo) encoding.
 */

export interface CheckpointPayload {
  seq: number;
  hash: string;
  /** ISO 8601 UTC. */
  time: string;
}

export interface SignedCheckpoint extends CheckpointPayload {
  key_id: string;
  signature: string;
}

export interface SigningKeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
  keyId: string;
}

type KeyInput = string | KeyObject;

const HEX_HASH = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BASE64 = /^[A-Za-z0-9+/]{86}==$/;

function asPublicKey(key: KeyInput): KeyObject {
  const object = typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
  if (object.asymmetricKeyType !== 'ed25519') throw new TypeError('Checkpoint keys must be Ed25519');
  return object;
}

function asPrivateKey(key: KeyInput): KeyObject {
  const object = typeof key === 'string' ? createPrivateKey(key) : key;
  if (object.type !== 'private' || object.asymmetricKeyType !== 'ed25519') throw new TypeError('Checkpoint signing needs an Ed25519 private key');
  return object;
}

/** Short fingerprint of a public key (or of the public half of a private key). */
export function signingKeyId(key: KeyInput): string {
  const der = asPublicKey(key).export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

/** The public key PEM to hand to verifiers, from the private key PEM the service holds. */
export function publicKeyPemOf(privateKeyPem: KeyInput): string {
  return asPublicKey(privateKeyPem).export({ format: 'pem', type: 'spki' }).toString();
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    keyId: signingKeyId(publicKey),
  };
}

function signedBytes(checkpoint: CheckpointPayload & { key_id: string }): Buffer {
  const { seq, hash, time, key_id } = checkpoint;
  return Buffer.from(canonicalJson({ seq, hash, time, key_id }), 'utf8');
}

function validPayload(checkpoint: CheckpointPayload): boolean {
  return (
    Number.isSafeInteger(checkpoint.seq) &&
    checkpoint.seq >= 0 &&
    typeof checkpoint.hash === 'string' &&
    HEX_HASH.test(checkpoint.hash) &&
    typeof checkpoint.time === 'string' &&
    ISO_TIME.test(checkpoint.time)
  );
}

export function signCheckpoint(checkpoint: { seq: number; hash: string; time: string | Date }, privateKey: KeyInput): SignedCheckpoint {
  const time = checkpoint.time instanceof Date ? checkpoint.time.toISOString() : checkpoint.time;
  const payload = { seq: checkpoint.seq, hash: checkpoint.hash, time };
  if (!validPayload(payload)) {
    throw new TypeError('Checkpoint needs a non-negative integer seq, a 64-hex-character hash and an ISO 8601 UTC time');
  }
  const key = asPrivateKey(privateKey);
  const unsigned = { ...payload, key_id: signingKeyId(key) };
  return { ...unsigned, signature: sign(null, signedBytes(unsigned), key).toString('base64') };
}

/**
 * True only if the checkpoint is well-formed, names this public key, and its signature covers exactly these values.
 * A malformed checkpoint (e.g. read from a file) gives false rather than an exception.
 */
export function verifyCheckpoint(checkpoint: SignedCheckpoint, publicKey: KeyInput): boolean {
  const key = asPublicKey(publicKey);
  if (typeof checkpoint !== 'object' || checkpoint === null || !validPayload(checkpoint)) return false;
  if (checkpoint.key_id !== signingKeyId(key)) return false;
  if (typeof checkpoint.signature !== 'string' || !BASE64.test(checkpoint.signature)) return false;
  const signature = Buffer.from(checkpoint.signature, 'base64');
  if (signature.length !== 64 || signature.toString('base64') !== checkpoint.signature) return false;
  return verify(null, signedBytes(checkpoint), key, signature);
}

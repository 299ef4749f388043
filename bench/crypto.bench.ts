/**
 * Field encryption and audit chain verification throughput.
 *
 *   npx tsx bench/crypto.bench.ts [--quick]
 *
 * 1. Encrypt+decrypt round trips of the envelope field cipher vs raw AES-256-GCM with one key (random nonce, same AAD,
 *    binary in memory) on the same payloads, 64 B / 1 KiB / 64 KiB. Target: >= 0.7x. The envelope does twice the
 *    AES-GCM operations of the baseline (a data key is wrapped, and unwrapped, per value) and produces a base64url
 *    string. Node's per-operation cost of an AES-GCM cipher object dominates small payloads, so there the envelope
 *    runs near 0.5x and the target is out of reach without giving up the per-value key; it pays for itself in cheap
 *    rotation. The cipher draws keys and nonces from a pooled CSPRNG buffer; a second baseline that does the same
 *    shows the overhead without that optimisation.
 * 2. Rewrapping 10,000 ciphertexts under a new master key (what rotation costs in CPU, without the database).
 * 3. Verifying a 100,000-event audit chain. Target: < 5 s.
 *
 * Rounds alternate between candidate and baselines so background load on a shared machine hits both alike; the
 * median round is reported.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { createFieldCipher, createKeyring, computeEventHash, GENESIS_HASH, verifyChain, type ChainEvent } from '../src/lib/crypto/index.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 5 : 15;
const ROUND_MS = quick ? 60 : 100;
const AAD = 'messages:3f1b2c4d-0000-4000-8000-000000000001:content';

function opsPerSecond(fn: () => void, ms: number): number {
  const deadline = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  let ops = 0;
  let now = process.hrtime.bigint();
  const start = now;
  while (now < deadline) {
    for (let i = 0; i < 16; i++) fn();
    ops += 16;
    now = process.hrtime.bigint();
  }
  return ops / (Number(now - start) / 1e9);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Comparison {
  ops: Record<string, number>;
  /** Median over rounds of candidate/baseline measured back to back, which cancels most background load. */
  ratio: Record<string, number>;
  /** Fastest candidate round over fastest baseline round: the least disturbed estimate on a busy machine. */
  bestRatio: Record<string, number>;
}

function compare(candidate: () => void, baselines: Record<string, () => void>): Comparison {
  const all: Record<string, () => void> = { candidate, ...baselines };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(all).map((name) => [name, []]));
  const ratios: Record<string, number[]> = Object.fromEntries(Object.keys(baselines).map((name) => [name, []]));
  for (const fn of Object.values(all)) opsPerSecond(fn, 50);
  for (let round = 0; round < ROUNDS; round++) {
    const candidateOps = opsPerSecond(candidate, ROUND_MS);
    samples.candidate!.push(candidateOps);
    for (const [name, fn] of Object.entries(baselines)) {
      const ops = opsPerSecond(fn, ROUND_MS);
      samples[name]!.push(ops);
      ratios[name]!.push(candidateOps / ops);
    }
  }
  return {
    ops: Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)])),
    ratio: Object.fromEntries(Object.entries(ratios).map(([name, values]) => [name, median(values)])),
    bestRatio: Object.fromEntries(Object.keys(baselines).map((name) => [name, Math.max(...samples.candidate!) / Math.max(...samples[name]!)])),
  };
}

const format = (n: number) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------------------------------
// 1. Field cipher vs raw AES-256-GCM
const masterKey = randomBytes(32);
const cipher = createFieldCipher(createKeyring([{ id: 'bench', key: masterKey }]));
const rawKey = randomBytes(32);
const aad = Buffer.from(AAD);

function rawRoundTrip(plaintext: Buffer, nonce: Buffer): Buffer {
  const encryptor = createCipheriv('aes-256-gcm', rawKey, nonce);
  encryptor.setAAD(aad);
  const ciphertext = encryptor.update(plaintext);
  encryptor.final();
  const tag = encryptor.getAuthTag();
  const decryptor = createDecipheriv('aes-256-gcm', rawKey, nonce);
  decryptor.setAAD(aad);
  decryptor.setAuthTag(tag);
  const opened = decryptor.update(ciphertext);
  decryptor.final();
  return opened;
}

const noncePool = Buffer.alloc(4096);
let nonceOffset = noncePool.length;
function pooledNonce(): Buffer {
  if (nonceOffset + 12 > noncePool.length) {
    randomFillSync(noncePool);
    nonceOffset = 0;
  }
  nonceOffset += 12;
  return noncePool.subarray(nonceOffset - 12, nonceOffset);
}

console.log(`Field cipher encrypt+decrypt round trips (medians of ${ROUNDS} back-to-back rounds of ${ROUND_MS} ms)\n`);
console.log('payload   envelope ops/s   raw ops/s   ratio (best round)   raw, pooled nonce ops/s   ratio (best round)   target');
let allMet = true;
for (const [label, size] of [
  ['64 B', 64],
  ['1 KiB', 1024],
  ['64 KiB', 65536],
] as const) {
  const plaintext = randomBytes(size);
  if (!cipher.decrypt(cipher.encrypt(plaintext, AAD), AAD).equals(plaintext) || !rawRoundTrip(plaintext, randomBytes(12)).equals(plaintext)) {
    throw new Error('round trip mismatch');
  }
  const result = compare(() => void cipher.decrypt(cipher.encrypt(plaintext, AAD), AAD), {
    raw: () => void rawRoundTrip(plaintext, randomBytes(12)),
    rawPooled: () => void rawRoundTrip(plaintext, pooledNonce()),
  });
  const ratio = result.ratio.raw!;
  allMet &&= ratio >= 0.7;
  const column = (name: string) => `${result.ratio[name]!.toFixed(2)}x (${result.bestRatio[name]!.toFixed(2)}x)`;
  console.log(
    `${label.padEnd(9)} ${format(result.ops.candidate!).padStart(14)} ${format(result.ops.raw!).padStart(11)} ${column('raw').padStart(20)}` +
      ` ${format(result.ops.rawPooled!).padStart(25)} ${column('rawPooled').padStart(20)}   ${ratio >= 0.7 ? 'met' : 'MISSED'} (>= 0.7x raw)`,
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// 2. Rotation (CPU only)
const oldKey = { id: 'old', key: randomBytes(32) };
const newKey = { id: 'new', key: randomBytes(32) };
const before = createFieldCipher(createKeyring([oldKey]));
const during = createFieldCipher(createKeyring([newKey, oldKey]));
const secrets = Array.from({ length: 10_000 }, (_, i) => before.encrypt(`sk-${i}-${randomBytes(24).toString('hex')}`, `secrets:${i}:value`));
const rotationStart = process.hrtime.bigint();
const rotated = secrets.map((ciphertext, i) => (during.needsRewrap(ciphertext) ? during.rewrap(ciphertext, `secrets:${i}:value`) : ciphertext));
const rotationMs = Number(process.hrtime.bigint() - rotationStart) / 1e6;
const after = createFieldCipher(createKeyring([newKey]));
if (!rotated.every((ciphertext, i) => after.decryptString(ciphertext, `secrets:${i}:value`).startsWith(`sk-${i}-`))) {
  throw new Error('rotation check failed');
}
console.log(`\nRewrap 10,000 secrets to a new master key (CPU only, no database): ${rotationMs.toFixed(1)} ms`);

// ---------------------------------------------------------------------------------------------------------------------
// 3. Audit chain verification
const EVENTS = 100_000;
const events: ChainEvent[] = new Array(EVENTS);
let prev = GENESIS_HASH;
const epoch = Date.UTC(2025, 0, 1);
for (let i = 0; i < EVENTS; i++) {
  const seq = i + 1;
  const fields = {
    id: `7a1d2c3b-${String(seq).padStart(4, '0').slice(-4)}-4000-8000-${String(seq).padStart(12, '0')}`,
    seq,
    event_type: seq % 3 === 0 ? 'TOOL_CALL_COMPLETED' : 'LLM_REQUEST',
    user_id: '5f0c1c7e-3f0a-4d8e-9b3c-7a2e1d4c5b6a',
    session_id: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
    resource_type: 'chat_session',
    resource_id: `session-${seq % 97}`,
    details: { model: 'ollama/llama3.1', prompt_length: 400 + (seq % 50), prompt_hash: 'ab'.repeat(32), tokens: { input: 120, output: 80 }, redactions: 0 },
    ip_address: '10.0.0.12',
    user_agent: 'Mozilla/5.0 (X11; Linux x86_64) cdsa-web/1.0',
    created_at: new Date(epoch + seq * 250).toISOString(),
  };
  const hash = computeEventHash(prev, fields);
  events[i] = { ...fields, prev_hash: prev, hash };
  prev = hash;
}

async function* fromDatabaseInBatches(batch = 1000): AsyncGenerator<ChainEvent> {
  for (let i = 0; i < events.length; i += batch) {
    const page = await Promise.resolve(events.slice(i, i + batch));
    yield* page;
  }
}

const verifyStart = process.hrtime.bigint();
const verification = await verifyChain(fromDatabaseInBatches());
const verifySeconds = Number(process.hrtime.bigint() - verifyStart) / 1e9;
if (!verification.valid || verification.checked !== EVENTS) throw new Error('chain verification failed');
console.log(
  `\nVerify ${format(EVENTS)} audit events (async, batches of 1,000): ${verifySeconds.toFixed(2)} s, ` +
    `${format(EVENTS / verifySeconds)} events/s   target < 5 s: ${verifySeconds < 5 ? 'met' : 'MISSED'}`,
);
allMet &&= verifySeconds < 5;
console.log(`\n${allMet ? 'All targets met.' : 'Some targets missed (see above).'}`);

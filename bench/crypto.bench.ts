/**
 * Field encryption and audit chain verification throughput.
 *
 *   npx tsx bench/crypto.bench.ts [--quick]
 *
 * 1. Encrypt+decrypt round trips of the envelope field cipher vs raw AES-256-GCM with one key (random nonce, same AAD,
 *    binary in memory) on the same payloads, 64 B / 1 KiB / 64 KiB. Target: >= 0.7x. The cipher caches data keys
 *    (one data key encrypts many values; unwrapped data keys are kept in an LRU cache), so a value costs one AES-GCM
 *    operation each way, like the baseline, plus base64url and the envelope's checks. A second baseline draws nonces
 *    from a pooled CSPRNG buffer, as the cipher does. Then, for information, what a cache miss costs: decrypting a
 *    value whose data key is not cached (the first read of a data key, e.g. one another process drew) vs one whose is.
 *    A third baseline adds to the raw round trip only the base64url encoding and decoding of the ciphertext: the
 *    ceiling for any ciphertext kept in a text column, printed beside the raw one.
 * 2. Rewrapping 10,000 ciphertexts under a new master key (what rotation costs in CPU, without the database). Each
 *    rewrap authenticates the whole value (one AES-GCM pass over it); a data key shared by many values is wrapped once.
 * 3. Verifying a 100,000-event audit chain. Target: < 5 s.
 *
 * Throughput is counted per second of CPU time used by this process (user + system, garbage collection included), so
 * time spent waiting for a core on a shared machine does not count. Rounds alternate between candidate and baselines
 * so what background load still does to caches hits both alike; the median round is reported.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { createFieldCipher, createKeyring, computeEventHash, GENESIS_HASH, verifyChain, type ChainEvent } from '../src/lib/crypto/index.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 7 : 21;
const ROUND_MS = quick ? 30 : 60;
const AAD = 'messages:3f1b2c4d-0000-4000-8000-000000000001:content';

/** Runs `fn` until `ms` of this process's CPU time are used; returns the number of calls and the microseconds used. */
function runFor(fn: () => void, ms: number): { ops: number; used: number } {
  const budget = ms * 1000;
  const start = process.cpuUsage();
  let ops = 0;
  let used = 0;
  while (used < budget) {
    for (let i = 0; i < 16; i++) fn();
    ops += 16;
    const { user, system } = process.cpuUsage(start);
    used = user + system;
  }
  return { ops, used };
}

/**
 * Calls per second of CPU time. An unmeasured run comes first: it pays for the garbage the previous function left,
 * which the collector would otherwise reclaim during (and charge to) this one.
 */
function opsPerSecond(fn: () => void, ms: number): number {
  runFor(fn, ms / 2);
  const { ops, used } = runFor(fn, ms);
  return ops / (used / 1e6);
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
// A data key per value, and a reader that caches one data key.
const keyPerValueWriter = createFieldCipher(createKeyring([{ id: 'bench', key: masterKey }]), { dataKeyMaxUses: 1 });
const coldReader = createFieldCipher(createKeyring([{ id: 'bench', key: masterKey }]), { dataKeyCacheSize: 1 });
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

/**
 * The raw round trip plus what storing the ciphertext as text costs at the least: the ciphertext and tag encoded to
 * base64url and decoded back, nothing else. Ciphertexts live in text columns (the contract's `secrets.encrypted_value`
 * is one; bytea would come back hex-encoded through the text protocol, which decodes several times slower than
 * base64), so this is the ceiling any text-stored envelope can reach, measured in the same run.
 */
function rawTextRoundTrip(plaintext: Buffer, nonce: Buffer): Buffer {
  const encryptor = createCipheriv('aes-256-gcm', rawKey, nonce);
  encryptor.setAAD(aad);
  const ciphertext = encryptor.update(plaintext);
  encryptor.final();
  // Encoded apart, so not even a copy of the ciphertext is added.
  const storedCiphertext = ciphertext.toString('base64url');
  const storedTag = encryptor.getAuthTag().toString('base64url');
  const decryptor = createDecipheriv('aes-256-gcm', rawKey, nonce);
  decryptor.setAAD(aad);
  decryptor.setAuthTag(Buffer.from(storedTag, 'base64url'));
  const opened = decryptor.update(Buffer.from(storedCiphertext, 'base64url'));
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

const PAYLOADS = [
  ['64 B', 64],
  ['1 KiB', 1024],
  ['64 KiB', 65536],
] as const;

console.log(`Field cipher encrypt+decrypt round trips per CPU second (medians of ${ROUNDS} back-to-back rounds of ${ROUND_MS} ms of CPU)\n`);
console.log('payload   envelope ops/s   raw ops/s   ratio (best round)   raw, pooled nonce ops/s   ratio (best round)   target');
let allMet = true;
const textCeiling: string[] = [];
for (const [label, size] of PAYLOADS) {
  const plaintext = randomBytes(size);
  if (
    !cipher.decrypt(cipher.encrypt(plaintext, AAD), AAD).equals(plaintext) ||
    !rawRoundTrip(plaintext, randomBytes(12)).equals(plaintext) ||
    !rawTextRoundTrip(plaintext, randomBytes(12)).equals(plaintext)
  ) {
    throw new Error('round trip mismatch');
  }
  const result = compare(() => void cipher.decrypt(cipher.encrypt(plaintext, AAD), AAD), {
    raw: () => void rawRoundTrip(plaintext, randomBytes(12)),
    rawPooled: () => void rawRoundTrip(plaintext, pooledNonce()),
    rawText: () => void rawTextRoundTrip(plaintext, randomBytes(12)),
  });
  textCeiling.push(
    `${label.padEnd(9)} ${format(result.ops.rawText!).padStart(16)} ${`${(result.ops.rawText! / result.ops.raw!).toFixed(2)}x`.padStart(18)}` +
      ` ${`${result.ratio.rawText!.toFixed(2)}x`.padStart(24)}`,
  );
  const ratio = result.ratio.raw!;
  allMet &&= ratio >= 0.7;
  const column = (name: string) => `${result.ratio[name]!.toFixed(2)}x (${result.bestRatio[name]!.toFixed(2)}x)`;
  console.log(
    `${label.padEnd(9)} ${format(result.ops.candidate!).padStart(14)} ${format(result.ops.raw!).padStart(11)} ${column('raw').padStart(20)}` +
      ` ${format(result.ops.rawPooled!).padStart(25)} ${column('rawPooled').padStart(20)}   ${ratio >= 0.7 ? 'met' : 'MISSED'} (>= 0.7x raw)`,
  );
}
console.log('\nThe ceiling for any ciphertext kept in a text column: raw AES-GCM plus base64url of the ciphertext and back, nothing else');
console.log('payload   raw+text ops/s   raw+text vs raw   envelope vs raw+text');
for (const line of textCeiling) console.log(line);

// A reader whose cache holds one data key, alternating between values under two: every read unwraps.
console.log('\nFor information, decrypt alone when the data key is not cached (first read of a data key) vs cached:');
for (const [label, size] of PAYLOADS) {
  const plaintext = randomBytes(size);
  const [first, second] = [keyPerValueWriter.encrypt(plaintext, AAD), keyPerValueWriter.encrypt(plaintext, AAD)] as const;
  const cached = cipher.encrypt(plaintext, AAD);
  let turn = false;
  const result = compare(
    () => {
      turn = !turn;
      coldReader.decrypt(turn ? first : second, AAD);
    },
    { cached: () => void cipher.decrypt(cached, AAD) },
  );
  console.log(`${label.padEnd(9)} ${format(result.ops.candidate!).padStart(10)} vs ${format(result.ops.cached!).padStart(10)} ops/s   ${result.ratio.cached!.toFixed(2)}x`);
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

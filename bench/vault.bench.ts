/**
 * Key rotation of the vault: 10,000 secrets (one version each) written under an old key, then rewrapped to a new one
 * with the same code `POST /vault/rotate` and `cdsa vault rotate` run (batches of 500 rows, one transaction each).
 *
 *   npx tsx bench/vault.bench.ts                   embedded database (PGlite, in memory)
 *   DATABASE_URL=postgres://... npx tsx bench/vault.bench.ts   a fresh database on that server, dropped afterwards
 *   BENCH_SECRETS=50000 BENCH_ROUNDS=5 npx tsx bench/vault.bench.ts
 *
 * Each round rotates all of them to a fresh key (the new key first, the previous one still listed, as an operator does);
 * the median round is reported. Baselines measured in the same rounds on the same rows:
 * - database only: the same batched select-for-update + update pass with a cipher that returns each value unchanged,
 *   i.e. what rotation costs without any cryptography;
 * - crypto only: rewrapping the same ciphertexts in memory (no database).
 * Encrypt/decrypt throughput against raw AES-256-GCM is measured by bench/crypto.bench.ts.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { queryRows } from '../src/db/client.js';
import { secrets, secretVersions } from '../src/db/schema/vault.js';
import { createFieldCipher, type FieldCipher } from '../src/lib/crypto/envelope.js';
import { generateKeyringEntry, parseKeyring } from '../src/lib/crypto/keyring.js';
import { SYSTEM_CONTEXT } from '../src/modules/auth/permissions.js';
import { rotateColumn } from '../src/modules/vault/rotation.js';
import { SECRET_VERSIONS_COLUMN, secretAad } from '../src/modules/vault/vault.service.js';
import { buildTestApp } from '../test/helpers/app.js';

const COUNT = Number(process.env.BENCH_SECRETS ?? 10_000);
const INSERT_CHUNK = 1_000;
const OLD = generateKeyringEntry('bench-old');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function seconds(fromMs: number): number {
  return (performance.now() - fromMs) / 1000;
}

/** Rewrites every value as it is: the rotation pass without cryptography. */
const unchanged: FieldCipher = {
  activeKeyId: 'bench-none',
  rewrap: (ciphertext) => ciphertext,
  encrypt: () => {
    throw new Error('not used');
  },
  decrypt: () => {
    throw new Error('not used');
  },
  decryptString: () => {
    throw new Error('not used');
  },
  needsRewrap: () => true,
  keyIdOf: () => 'bench-old',
};

const source = await buildTestApp({ secrets: { encryptionKeys: OLD }, processJobs: false });
const db = source.app.infra.database.db;
console.log(`vault rotation: ${COUNT} secrets on ${source.app.infra.database.kind === 'embedded' ? 'embedded PGlite' : 'PostgreSQL'}`);

let started = performance.now();
const samples: { id: string; value: string }[] = [];
for (let offset = 0; offset < COUNT; offset += INSERT_CHUNK) {
  const rows: { id: string; name: string; encryptedValue: string }[] = [];
  for (let index = offset; index < Math.min(COUNT, offset + INSERT_CHUNK); index += 1) {
    const id = randomUUID();
    const value = `sk-bench-${index}-${randomUUID()}`;
    const encryptedValue = source.app.fieldCipher.encrypt(value, secretAad(id, 1));
    rows.push({ id, name: `bench.secret-${index}`, encryptedValue });
    if (index % 997 === 0) samples.push({ id, value });
  }
  await db.transaction(async (tx) => {
    await tx.insert(secrets).values(rows);
    await tx.insert(secretVersions).values(rows.map((row) => ({ secretId: row.id, version: 1, encryptedValue: row.encryptedValue })));
  });
}
console.log(`  seeded in ${seconds(started).toFixed(2)} s`);

async function vacuum(): Promise<void> {
  // Each pass leaves 10,000 dead row versions; clean them so every measurement starts from the same table state.
  if (source.app.infra.database.kind === 'embedded') await source.app.infra.database.pglite!.exec('VACUUM ANALYZE secret_versions, secrets');
  else await db.execute(sql`VACUUM ANALYZE secret_versions, secrets`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

// Rounds alternate baseline and rotation (each round to a fresh key), so load from other processes hits both alike.
const databaseRuns: number[] = [];
const cryptoRuns: number[] = [];
const rotationRuns: number[] = [];
let keys = [OLD];
let lastKeyId = 'bench-old';
for (let round = 0; round < ROUNDS; round += 1) {
  await vacuum();
  started = performance.now();
  const databaseOnly = await rotateColumn(db, unchanged, SECRET_VERSIONS_COLUMN);
  databaseRuns.push(seconds(started));
  if (databaseOnly.rotated !== COUNT) throw new Error(`database baseline touched ${databaseOnly.rotated} rows, expected ${COUNT}`);

  const current = await queryRows<{ secret_id: string; encrypted_value: string }>(db, sql`SELECT secret_id, encrypted_value FROM secret_versions`);
  const next = generateKeyringEntry(`bench-r${round}`);
  const rotating = createFieldCipher(parseKeyring([next, ...keys].join(',')));
  started = performance.now();
  for (const row of current) rotating.rewrap(row.encrypted_value, secretAad(row.secret_id, 1));
  cryptoRuns.push(seconds(started));

  // The operator restarts with the new key first and the previous one still listed, then rotates.
  await vacuum();
  keys = [next, keys[0]!];
  const target = await buildTestApp({ share: source, secrets: { encryptionKeys: keys.join(',') }, processJobs: false });
  started = performance.now();
  const result = await target.app.vault.rotate(null, SYSTEM_CONTEXT);
  rotationRuns.push(seconds(started));
  await target.close();
  if (result.rotated !== COUNT) throw new Error(`round ${round} rewrapped ${result.rotated} of ${COUNT}`);
  lastKeyId = `bench-r${round}`;
}

const prefix = `v1.${lastKeyId}.`;
const [check] = await queryRows<{ versions: number; current: number }>(
  db,
  sql`SELECT (SELECT count(*)::int FROM secret_versions WHERE starts_with(encrypted_value, ${prefix})) AS versions,
             (SELECT count(*)::int FROM secrets WHERE starts_with(encrypted_value, ${prefix})) AS current`,
);
const newOnly = createFieldCipher(parseKeyring(keys[0]!));
for (const sample of samples) {
  const [row] = await queryRows<{ encrypted_value: string }>(db, sql`SELECT encrypted_value FROM secrets WHERE id = ${sample.id}`);
  if (newOnly.decryptString(row!.encrypted_value, secretAad(sample.id, 1)) !== sample.value) throw new Error('a rotated value did not decrypt');
}
await source.close();

if (check!.versions !== COUNT || check!.current !== COUNT) throw new Error(`rotation incomplete: ${JSON.stringify(check)}`);
const rotationSeconds = median(rotationRuns);
const databaseSeconds = median(databaseRuns);
const cryptoSeconds = median(cryptoRuns);
console.log(`  rotation of ${COUNT} secrets (median of ${ROUNDS}): ${rotationSeconds.toFixed(2)} s = ${Math.round(COUNT / rotationSeconds)} secrets/s  [${rotationRuns.map((value) => value.toFixed(2)).join(', ')}]`);
console.log(`  baseline, database pass without crypto:    ${databaseSeconds.toFixed(2)} s  -> rotation/baseline ${(rotationSeconds / databaseSeconds).toFixed(2)}x`);
console.log(`  baseline, rewrap in memory (no database):  ${cryptoSeconds.toFixed(2)} s  -> ${((cryptoSeconds / rotationSeconds) * 100).toFixed(1)}% of the rotation time`);
console.log(`  verified: every version and current value under the last key; ${samples.length} samples decrypt with it alone`);

/**
 * Audit trail benchmarks: append throughput with 50 concurrent writers against plain single-row INSERTs into a
 * table of the same shape (same database, same run), with the chain's MAC only and with the MAC plus an audit sink
 * file (every append also written outside the database before it commits), and verification of 100,000 events.
 *
 *   npx tsx bench/audit.bench.ts                      # embedded PGlite (in memory)
 *   DATABASE_URL=postgres://... npx tsx bench/audit.bench.ts   # a scratch database on that server, dropped after
 *
 * Targets: standalone appends >= 0.5x plain INSERTs on PostgreSQL; verifying 100,000 events < 5 s.
 * BENCH_SECONDS (default 5) sets each throughput phase's length; BENCH_VERIFY_EVENTS (default 100000) the chain size.
 */
import { randomUUID, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { openDatabase, queryRows, type Database } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { createAuditFingerprinter } from '../src/modules/audit/audit.privacy.js';
import { createAuditRepository } from '../src/modules/audit/audit.repository.js';
import { createAuditRecorder, type AuditEventInput } from '../src/modules/audit/audit.service.js';
import { createAuditVerifier } from '../src/modules/audit/audit.verify.js';
import { createAuditSigner } from '../src/modules/audit/audit.signing.js';
import { createAuditMacKeyring } from '../src/modules/audit/audit.mac.js';
import { createFileSink, createSinkSet } from '../src/modules/audit/audit.sink.js';
import { generateAuditHmacKeys, generateAuditSigningKeyPem } from '../src/lib/secrets.js';
import { createPostgresDatabase, dropPostgresDatabase } from '../test/helpers/postgres.js';

const WRITERS = 50;
const PHASE_MS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;
const VERIFY_EVENTS = Number(process.env.BENCH_VERIFY_EVENTS ?? 100_000);

async function scratchDatabase(): Promise<{ database: Database; drop: () => Promise<void>; label: string }> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) {
    const database = await openDatabase({});
    return { database, drop: async () => database.close(), label: 'PGlite (embedded, in memory)' };
  }
  const url = await createPostgresDatabase(baseUrl, 'cdsa_bench');
  const database = await openDatabase({ databaseUrl: url });
  return {
    database,
    label: `PostgreSQL (${new URL(url).host}, pool of 10 connections)`,
    drop: async () => {
      await database.close();
      await dropPostgresDatabase(baseUrl, url);
    },
  };
}

type Operation = (writer: number, i: number) => Promise<unknown>;

/** Runs `writers` loops of `operation` for the phase's duration; returns operations per second. */
async function throughput(writers: number, operation: Operation): Promise<{ perSecond: number; count: number }> {
  let count = 0;
  const deadline = Date.now() + PHASE_MS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      for (let i = 0; Date.now() < deadline; i += 1) {
        await operation(writer, i);
        count += 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: count / seconds, count };
}

function event(writer: number, i: number): AuditEventInput {
  return {
    eventType: 'TOOL_CALL_COMPLETED',
    userId: randomUUID(),
    resourceType: 'tool',
    resourceId: `tool-${writer}`,
    details: { i, writer, duration_ms: 12, status: 'completed' },
    context: { ipAddress: '127.0.0.1', userAgent: 'bench', requestId: null },
  };
}

async function main(): Promise<void> {
  const { database, drop, label } = await scratchDatabase();
  try {
    await runMigrations(database);
    const db = database.db;
    const repository = createAuditRepository();
    const keyring = createAuditMacKeyring(generateAuditHmacKeys());
    const fingerprinter = createAuditFingerprinter(randomBytes(32));
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const sinkDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-bench-sink-'));
    const sinks = createSinkSet([createFileSink(path.join(sinkDir, 'audit-sink.jsonl'))]);
    const sinkRecorder = createAuditRecorder({ db, repository, keyring, sinks, fingerprinter, logPrompts: false });
    // The baseline: the same columns and indexes, no chain, no trigger.
    await db.execute(sql`create table bench_plain_events (like audit_events including defaults including indexes)`);
    await db.execute(sql`alter table bench_plain_events alter column seq add generated always as identity`);

    console.log(`audit append and verification benchmark on ${label}`);
    console.log(`${WRITERS} concurrent writers, ${PHASE_MS / 1000} s per phase\n`);

    const plain = await throughput(WRITERS, (writer, i) => {
      const input = event(writer, i);
      return db.execute(sql`insert into bench_plain_events (event_type, user_id, resource_type, resource_id, details, ip_address, user_agent, created_at, prev_hash, hash)
        values (${input.eventType}, ${input.userId}, ${input.resourceType}, ${input.resourceId}, ${JSON.stringify(input.details)}::jsonb, '127.0.0.1', 'bench', now(), ${'0'.repeat(64)}, ${'f'.repeat(64)})`);
    });
    console.log(`plain single-row INSERTs:                 ${plain.perSecond.toFixed(0).padStart(7)} rows/s`);

    // Without and with the sink, in the order A B B A, so that drift during the run (a growing table, a busy
    // machine) weighs on both alike; each rate is the mean of its two phases.
    const paired = async (without: Operation, withSink: Operation) => {
      const a1 = await throughput(WRITERS, without);
      const b1 = await throughput(WRITERS, withSink);
      const b2 = await throughput(WRITERS, withSink);
      const a2 = await throughput(WRITERS, without);
      return { without: (a1.perSecond + a2.perSecond) / 2, withSink: (b1.perSecond + b2.perSecond) / 2 };
    };
    const standalone = await paired(
      (writer, i) => recorder.recordStandalone(event(writer, i)),
      (writer, i) => sinkRecorder.recordStandalone(event(writer, i)),
    );
    console.log(`audit recordStandalone (grouped commits): ${standalone.without.toFixed(0).padStart(7)} events/s   ratio ${(standalone.without / plain.perSecond).toFixed(2)}x (target >= 0.5x)`);
    console.log(
      `  + sink file:                             ${standalone.withSink.toFixed(0).padStart(7)} events/s   ratio ${(standalone.withSink / plain.perSecond).toFixed(2)}x, ${(standalone.withSink / standalone.without).toFixed(2)}x of without sink`,
    );
    const inTransaction = await paired(
      (writer, i) => db.transaction((tx) => recorder.record(tx, event(writer, i))),
      (writer, i) => db.transaction((tx) => sinkRecorder.record(tx, event(writer, i))),
    );
    console.log(`audit record(tx) in its own transaction:  ${inTransaction.without.toFixed(0).padStart(7)} events/s   ratio ${(inTransaction.without / plain.perSecond).toFixed(2)}x (one head lock per commit)`);
    console.log(
      `  + sink file:                             ${inTransaction.withSink.toFixed(0).padStart(7)} events/s   ratio ${(inTransaction.withSink / plain.perSecond).toFixed(2)}x, ${(inTransaction.withSink / inTransaction.without).toFixed(2)}x of without sink`,
    );
    await sinks.close();
    fs.rmSync(sinkDir, { recursive: true, force: true });

    const signer = createAuditSigner(generateAuditSigningKeyPem());
    const verifier = createAuditVerifier({ db, repository, keys: [signer.verifyingKey], keyring });
    const [{ n }] = (await queryRows<{ n: unknown }>(db, sql`select count(*) as n from audit_events`)) as [{ n: unknown }];
    let existing = Number(n);
    while (existing < VERIFY_EVENTS) {
      const size = Math.min(2_000, VERIFY_EVENTS - existing);
      await db.transaction((tx) => recorder.recordMany(tx, Array.from({ length: size }, (_, i) => event(0, existing + i))));
      existing += size;
    }
    const started = performance.now();
    const result = await verifier.verify();
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `\nverify ${result.checked} events: ${seconds.toFixed(2)} s (${(result.checked / seconds).toFixed(0)} events/s), valid=${result.valid}   ratio to target ${(seconds / 5).toFixed(2)} of 5 s`,
    );
    if (!result.valid) throw new Error(`the benchmark chain does not verify: ${result.reason}`);
  } finally {
    await drop();
  }
}

await main();

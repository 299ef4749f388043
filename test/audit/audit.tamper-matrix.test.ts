import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/cli/commands/audit.js';
import type { StoredAuditEvent } from '../../src/modules/audit/audit.chain.js';
import { archiveMessage } from '../../src/modules/audit/audit.signing.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { rewriteChain, snapshotAudit, storedEvents, tamper } from './tamper.js';

/**
 * The tamper matrix (docs/audit.md, threat model): an attacker with the tables' owner rights — triggers switched off,
 * every SHA-256 hash recomputed, the chain head moved to match — but without the audit keys, which never are in the
 * database. Every method, with and without also deleting the stored checkpoints, must be caught by
 * `cdsa audit verify --sink`; the database alone (GET /audit/verify) catches all but a truncated tail whose
 * checkpoints are gone, which is what the sink is for.
 */
type Attack = (t: TestApp, events: StoredAuditEvent[]) => Promise<void>;

const forgedDecision = (template: StoredAuditEvent): StoredAuditEvent => ({
  ...template,
  id: randomUUID(),
  event_type: 'APPROVAL_DECISION',
  resource_type: 'approval',
  resource_id: randomUUID(),
  details: { decision: 'APPROVED' },
  mac: null,
});

const MIDDLE = 6;

const attacks: Record<string, Attack> = {
  'delete an event': (t) => rewriteChain(t, (events) => events.filter((_, index) => index !== MIDDLE)),
  'reorder two events': (t) =>
    rewriteChain(t, (events) => {
      const swapped = [...events];
      [swapped[MIDDLE], swapped[MIDDLE + 1]] = [swapped[MIDDLE + 1]!, swapped[MIDDLE]!];
      return swapped;
    }),
  'insert an event mid-chain': (t) =>
    rewriteChain(t, (events) => [...events.slice(0, MIDDLE), { ...forgedDecision(events[MIDDLE]!), created_at: events[MIDDLE]!.created_at }, ...events.slice(MIDDLE)]),
  'append an event at the end': (t) => rewriteChain(t, (events) => [...events, { ...forgedDecision(events.at(-1)!), created_at: new Date().toISOString() }]),
  'truncate the tail': (t) => rewriteChain(t, (events) => events.slice(0, -3)),
  'forge an archive': async (t, events) => {
    // Removes a prefix and claims it was archived, with a statement signed by a key of the attacker's own.
    const through = events[MIDDLE]!;
    const { privateKey } = generateKeyPairSync('ed25519');
    const statement = {
      from_seq: 1,
      to_seq: through.seq,
      first_prev_hash: events[0]!.prev_hash,
      last_hash: through.hash,
      event_count: through.seq,
      file_sha256: '0'.repeat(64),
      archived_at: new Date().toISOString(),
      key_id: t.app.auditTrail.signer.keyId,
    };
    const signature = sign(null, archiveMessage(statement), privateKey).toString('base64');
    await tamper(
      t,
      sql`delete from audit_events where seq <= ${through.seq}`,
      sql`insert into audit_archives (from_seq, to_seq, first_prev_hash, last_hash, event_count, file_name, file_sha256, archived_at, key_id, signature)
          values (1, ${through.seq}, ${statement.first_prev_hash}, ${through.hash}, ${through.seq}, 'cdsa-audit-forged.jsonl', ${statement.file_sha256},
                  ${statement.archived_at}::timestamptz, ${statement.key_id}, ${signature})`,
    );
  },
};

describe('audit tamper matrix', () => {
  let t: TestApp;
  let dir: string;
  let sinkFile: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-tamper-'));
    sinkFile = path.join(dir, 'audit-sink.jsonl');
    t = await buildTestApp({ env: { AUDIT_SINK_FILE: sinkFile } });
    // Each its own transaction, as requests write them; a stored checkpoint in the middle and one at the head.
    for (let i = 0; i < 8; i += 1) await t.app.audit.recordStandalone({ eventType: 'USER_QUERY', details: { i } });
    await t.app.auditTrail.checkpoints.create(null);
    for (let i = 0; i < 8; i += 1) await t.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: { i } });
    await t.app.auditTrail.checkpoints.createPeriodic();
    expect(await verifyDatabase(t.app, { checkpoint: [], publicKey: [], sink: [sinkFile] })).toMatchObject({ valid: true });
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cases = Object.keys(attacks).flatMap((method) => [
    { method, deleteCheckpoints: false },
    { method, deleteCheckpoints: true },
  ]);

  it.each(cases)('$method (stored checkpoints deleted: $deleteCheckpoints) is detected', async ({ method, deleteCheckpoints }) => {
    const restore = await snapshotAudit(t);
    try {
      await attacks[method]!(t, await storedEvents(t));
      if (deleteCheckpoints) await tamper(t, sql`delete from audit_checkpoints`);

      const withSink = await verifyDatabase(t.app, { checkpoint: [], publicKey: [], sink: [sinkFile] });
      expect(withSink.valid, `${method}: ${withSink.reason ?? ''}`).toBe(false);
      expect(withSink.first_invalid_seq).not.toBeNull();

      const databaseOnly = await t.app.auditTrail.verifier.verify();
      const onlyTheSinkSees = method === 'truncate the tail' && deleteCheckpoints;
      expect(databaseOnly.valid, `${method}: ${databaseOnly.reason ?? ''}`).toBe(onlyTheSinkSees);
      if (onlyTheSinkSees) expect(withSink.reason).toMatch(/audit sink/);
    } finally {
      await restore();
    }
    expect(await verifyDatabase(t.app, { checkpoint: [], publicKey: [], sink: [sinkFile] })).toMatchObject({ valid: true });
  });
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportEvents, readCheckpointFiles, verifyDatabase, verifyExportFile } from '../../src/cli/commands/audit.js';
import { queryRows } from '../../src/db/client.js';
import type { AuditEvent } from '../../src/modules/audit/audit.chain.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { tamper } from './tamper.js';

describe('export, offline verification, checkpoints files and retention', () => {
  let t: TestApp;
  let dir: string;

  beforeAll(async () => {
    t = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '0' } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-audit-'));
    const db = t.app.infra.database.db;
    for (let batch = 0; batch < 3; batch += 1) {
      await db.transaction((tx) =>
        t.app.audit.recordMany(
          tx,
          Array.from({ length: 100 }, (_, i) => ({
            eventType: 'USER_QUERY' as const,
            details: { batch, i, text: 'naïve — ünïcode ✓ 😀', n: i / 3, nested: { z: 1, a: [1, 'two', null] } },
          })),
        ),
      );
    }
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const options = { checkpoint: [] as string[], publicKey: [] as string[] };

  it('exports JSON Lines that verify offline, and catches any edited line', async () => {
    const file = path.join(dir, 'export.jsonl');
    const summary = await exportEvents(t.app, { output: file });
    expect(summary.count).toBeGreaterThanOrEqual(300);
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(summary.count);
    const first = JSON.parse(lines[0]!) as AuditEvent;
    expect(first.seq).toBe(1);
    expect(first.prev_hash).toBe('0'.repeat(64));

    const offline = await verifyExportFile({ ...options, file });
    expect(offline).toMatchObject({ valid: true, checked: summary.count, first_seq: 1, last_seq: summary.last_seq, last_hash: summary.last_hash });

    const edited = lines.map((line, index) => {
      if (index !== 41) return line;
      const event = JSON.parse(line) as AuditEvent;
      return JSON.stringify({ ...event, details: { ...event.details, edited: true } });
    });
    const editedFile = path.join(dir, 'edited.jsonl');
    fs.writeFileSync(editedFile, `${edited.join('\n')}\n`);
    expect(await verifyExportFile({ ...options, file: editedFile })).toMatchObject({ valid: false, first_invalid_seq: 42 });

    const dropped = lines.filter((_, index) => index !== 10);
    fs.writeFileSync(editedFile, `${dropped.join('\n')}\n`);
    expect(await verifyExportFile({ ...options, file: editedFile })).toMatchObject({ valid: false, first_invalid_seq: 11 });
  });

  it('exports a period as the contiguous seq range holding it, which verifies on its own', async () => {
    const [row] = await queryRows<{ at: string }>(
      t.app.infra.database.db,
      sql`select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at from audit_events where seq = 150`,
    );
    const at = row!.at;
    const chunks: string[] = [];
    const summary = await exportEvents(t.app, { from: at, to: at }, { write: (text) => void chunks.push(text) });
    expect(summary.count).toBeGreaterThan(0);
    const events = chunks.join('').trimEnd().split('\n').map((line) => JSON.parse(line) as AuditEvent);
    expect(events.every((event) => event.created_at === at)).toBe(true);
    const file = path.join(dir, 'period.jsonl');
    fs.writeFileSync(file, chunks.join(''));
    expect(await verifyExportFile({ ...options, file })).toMatchObject({ valid: true, checked: summary.count, first_seq: summary.first_seq });
    await expect(exportEvents(t.app, { from: 'last week' })).rejects.toThrow(/Invalid date/);
  });

  it('writes checkpoint files that catch truncation, in the database and offline', async () => {
    const checkpoint = await t.app.auditTrail.checkpoints.create(null);
    const checkpointFile = path.join(dir, 'checkpoint.json');
    fs.writeFileSync(checkpointFile, JSON.stringify(checkpoint));
    const exportFile = path.join(dir, 'full.jsonl');
    await exportEvents(t.app, { output: exportFile });

    const withCheckpoint = { checkpoint: [checkpointFile], publicKey: [] };
    expect(await verifyDatabase(t.app, withCheckpoint)).toMatchObject({ valid: true, checkpoints_checked: 1 });
    expect(await verifyExportFile({ ...withCheckpoint, file: exportFile })).toMatchObject({ valid: true, checkpoints_checked: 1 });

    // The GET /audit/checkpoints export is accepted as a checkpoint file too.
    const exportedCheckpoints = path.join(dir, 'checkpoints.json');
    fs.writeFileSync(exportedCheckpoints, JSON.stringify(await t.app.auditTrail.checkpoints.list({})));
    expect(readCheckpointFiles([exportedCheckpoints]).checkpoints.length).toBeGreaterThan(0);

    // An offline copy that lost its tail: the checkpoint's event is not in it, so the file cannot vouch for it.
    const lines = fs.readFileSync(exportFile, 'utf8').trimEnd().split('\n');
    const cut = lines.filter((line) => (JSON.parse(line) as AuditEvent).seq <= checkpoint.seq - 5);
    const cutFile = path.join(dir, 'cut.jsonl');
    fs.writeFileSync(cutFile, `${cut.join('\n')}\n`);
    expect(await verifyExportFile({ ...withCheckpoint, file: cutFile })).toMatchObject({ valid: true, checkpoints_checked: 0, checkpoints_not_covered: 1 });

    // A checkpoint file whose signature was tampered with is refused.
    const forged = path.join(dir, 'forged.json');
    fs.writeFileSync(forged, JSON.stringify({ ...checkpoint, hash: 'f'.repeat(64) }));
    expect(await verifyExportFile({ checkpoint: [forged], publicKey: [], file: exportFile })).toMatchObject({ valid: false });
    expect(await verifyDatabase(t.app, { checkpoint: [forged], publicKey: [] })).toMatchObject({ valid: false });
  });

  it('archives an old prefix to a verifiable file, and the live chain still verifies', async () => {
    const db = t.app.infra.database.db;
    // Everything older than the newest event goes; the boundary is wherever the clock last moved.
    const [boundary] = await queryRows<{ at: string; first_kept: unknown }>(
      db,
      sql`select to_char(max(created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at,
                 (select min(seq) from audit_events where created_at = (select max(created_at) from audit_events)) as first_kept
          from audit_events`,
    );
    const before = new Date(boundary!.at);
    const firstKept = Number(boundary!.first_kept);
    const archiveDir = path.join(dir, 'archive');
    const result = await t.app.auditTrail.exporter.archive({ before, dir: archiveDir });
    expect(result.status).toBe('archived');
    const archivedThrough = result.statement!.to_seq;
    expect(archivedThrough).toBe(firstKept - 1);
    expect(archivedThrough).toBeGreaterThan(0);
    const [{ min }] = (await queryRows<{ min: unknown }>(db, sql`select min(seq) as min from audit_events`)) as [{ min: unknown }];
    expect(Number(min)).toBe(firstKept);
    const live = await t.app.auditTrail.verifier.verify();
    expect(live).toMatchObject({ valid: true, archived_through: archivedThrough });
    expect(live.checked).toBe(live.head_seq - archivedThrough);
    const [firstLive] = await queryRows<{ prev_hash: string }>(db, sql`select prev_hash from audit_events where seq = ${firstKept}`);
    expect(firstLive!.prev_hash).toBe(result.statement!.last_hash);

    // The archive file verifies on its own, and its sidecar carries the signed boundary.
    expect(await verifyExportFile({ ...options, file: result.file! })).toMatchObject({ valid: true, checked: archivedThrough, last_hash: result.statement!.last_hash });
    const sidecar = JSON.parse(fs.readFileSync(`${result.file}.archive.json`, 'utf8'));
    expect(sidecar).toMatchObject({ to_seq: archivedThrough, last_hash: result.statement!.last_hash, file_sha256: result.statement!.file_sha256 });

    // The archival was audited; plain deletes are still refused; a second run has nothing older to move.
    const events = await queryRows<{ n: unknown }>(db, sql`select count(*) as n from audit_events where event_type = 'AUDIT_RANGE_ARCHIVED'`);
    expect(Number(events[0]!.n)).toBe(1);
    await expect(db.execute(sql`delete from audit_events where seq = ${firstKept}`)).rejects.toThrow();
    expect((await t.app.auditTrail.exporter.archive({ before, dir: archiveDir })).status).toBe('nothing_to_archive');

    // Deleting live rows right after the archive boundary is still detected.
    await tamper(t, sql`create table audit_events_saved as select * from audit_events where seq = ${firstKept}`, sql`delete from audit_events where seq = ${firstKept}`);
    try {
      expect(await t.app.auditTrail.verifier.verify()).toMatchObject({ valid: false, first_invalid_seq: firstKept });
    } finally {
      await tamper(t, sql`insert into audit_events select * from audit_events_saved`, sql`drop table audit_events_saved`);
    }
    expect((await t.app.auditTrail.verifier.verify()).valid).toBe(true);
  });

  it('signs checkpoints periodically through the job queue', async () => {
    const periodic = await buildTestApp({ env: { AUDIT_CHECKPOINT_INTERVAL: '1' } });
    try {
      await periodic.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: {} });
      const first = await vi.waitFor(
        async () => {
          const list = await periodic.app.auditTrail.checkpoints.list({});
          if (list.items.length === 0) throw new Error('no checkpoint yet');
          return list.items[0]!;
        },
        { timeout: 10_000, interval: 100 },
      );
      const head = await periodic.app.auditTrail.verifier.verify();
      expect(first.seq).toBeLessThanOrEqual(head.head_seq);
      // The series continues: a new event is covered by a later checkpoint.
      const next = await periodic.app.audit.recordStandalone({ eventType: 'LOGIN_FAILED', details: {} });
      await vi.waitFor(
        async () => {
          const latest = await periodic.app.auditTrail.checkpoints.latest();
          if (!latest || latest.seq < next.seq) throw new Error('not covered yet');
        },
        { timeout: 10_000, interval: 100 },
      );
    } finally {
      await periodic.close();
    }
  });
});

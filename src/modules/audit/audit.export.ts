import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { Db } from '../../db/client.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { ValidationError } from '../../lib/errors.js';
import { SYSTEM_CONTEXT } from '../auth/permissions.js';
import { createChainVerifier, GENESIS_ANCHOR, GENESIS_HASH, type AuditEvent, type ChainAnchor, type ChainWitness, type StoredAuditEvent } from './audit.chain.js';
import type { AuditMacKeyring } from './audit.mac.js';
import type { AuditRepository } from './audit.repository.js';
import type { AuditRecorder } from './audit.service.js';
import { verifyCheckpointSignature, type AuditSigner, type AuditVerifyingKey, type SignedArchiveStatement, type SignedCheckpoint } from './audit.signing.js';

export interface ExportRange {
  fromSeq?: number;
  toSeq?: number;
  /** A period: the export covers the contiguous seq range holding every event created in it. */
  from?: Date;
  to?: Date;
}

export interface ExportSummary {
  first_seq: number | null;
  last_seq: number | null;
  count: number;
  /** The hash the first exported event links to (the anchor an offline verifier starts from). */
  first_prev_hash: string | null;
  last_hash: string | null;
}

/** Writes to a stream, waiting when its buffer is full, so a huge export never piles up in memory. */
export async function writeWithBackpressure(stream: NodeJS.WritableStream, chunk: string): Promise<void> {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

export interface OfflineVerifyOptions {
  checkpoints?: SignedCheckpoint[];
  keys?: readonly AuditVerifyingKey[];
}

export interface OfflineVerifyReport {
  valid: boolean;
  checked: number;
  first_seq: number | null;
  last_seq: number | null;
  last_hash: string | null;
  first_invalid_seq: number | null;
  reason: string | null;
  checkpoints_checked: number;
  /** Checkpoints for events outside the file (nothing can be said about them from it). */
  checkpoints_not_covered: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseLine(line: string): AuditEvent | null {
  try {
    const value = JSON.parse(line) as Partial<AuditEvent>;
    if (typeof value !== 'object' || value === null || !Number.isSafeInteger(value.seq)) return null;
    if (typeof value.prev_hash !== 'string' || typeof value.hash !== 'string' || !HEX64.test(value.hash)) return null;
    return value as AuditEvent;
  } catch {
    return null;
  }
}

/**
 * Verifies JSON Lines as `cdsa audit export` writes them, with nothing but the file (and optionally signed
 * checkpoints): every line's hash is recomputed, every `prev_hash` must be the previous line's `hash`, and a file
 * starting at seq 1 must start from the genesis hash. The algorithm is the one in docs/audit.md.
 */
export async function verifyExportLines(lines: AsyncIterable<string> | Iterable<string>, options: OfflineVerifyOptions = {}): Promise<OfflineVerifyReport> {
  const keys = options.keys ?? [];
  const checkpoints = options.checkpoints ?? [];
  for (const checkpoint of checkpoints) {
    if (!verifyCheckpointSignature(checkpoint, keys)) {
      return {
        valid: false,
        checked: 0,
        first_seq: null,
        last_seq: null,
        last_hash: null,
        first_invalid_seq: checkpoint.seq,
        reason: `the checkpoint for event ${checkpoint.seq} does not carry a valid signature by a trusted key`,
        checkpoints_checked: 0,
        checkpoints_not_covered: 0,
      };
    }
  }
  let verifier: ReturnType<typeof createChainVerifier> | undefined;
  let anchor: ChainAnchor | undefined;
  let firstSeq: number | null = null;
  let lineNumber = 0;
  let malformed: { seq: number; reason: string } | undefined;
  let lastSeen = 0;
  const witnesses: ChainWitness[] = checkpoints.map((c) => ({ seq: c.seq, hash: c.hash, source: `checkpoint signed at ${c.time}` }));

  for await (const raw of lines) {
    lineNumber += 1;
    const line = raw.trim();
    if (line === '') continue;
    const event = parseLine(line);
    if (!event) {
      malformed = { seq: lastSeen + 1, reason: `line ${lineNumber} is not an exported audit event` };
      break;
    }
    if (!verifier) {
      firstSeq = event.seq;
      anchor = event.seq === 1 ? GENESIS_ANCHOR : { seq: event.seq - 1, hash: event.prev_hash };
      // Checkpoints beyond the file's end say nothing about it; those inside must match.
      verifier = createChainVerifier(anchor, witnesses);
    }
    lastSeen = event.seq;
    if (!verifier.push(event)) break;
  }

  // A checkpoint beyond the file's last event is "not covered" here, not a truncation: a file may be a partial range.
  const result = verifier?.finish({ beyondEnd: 'ignore' });
  const lastSeq = result ? result.last_seq : null;
  const covered = checkpoints.filter((c) => anchor && c.seq > anchor.seq && lastSeq !== null && c.seq <= lastSeq);
  const anchorMismatch = checkpoints.find((c) => anchor && c.seq === anchor.seq && c.hash !== anchor.hash && anchor.seq > 0);
  let valid = result?.valid ?? true;
  let firstInvalid = result?.first_invalid_seq ?? null;
  let reason = result?.reason ?? null;
  if (malformed && valid) {
    valid = false;
    firstInvalid = malformed.seq;
    reason = malformed.reason;
  }
  if (anchorMismatch && valid) {
    valid = false;
    firstInvalid = anchorMismatch.seq;
    reason = `the file starts after event ${anchorMismatch.seq}, which differs from the checkpoint signed at ${anchorMismatch.time}`;
  }
  return {
    valid,
    checked: result?.checked ?? 0,
    first_seq: firstSeq,
    last_seq: lastSeq === null || (firstSeq !== null && lastSeq < firstSeq) ? null : lastSeq,
    last_hash: result && lastSeq !== null && firstSeq !== null && lastSeq >= firstSeq ? result.last_hash : null,
    first_invalid_seq: firstInvalid,
    reason,
    checkpoints_checked: covered.length,
    checkpoints_not_covered: checkpoints.length - covered.length,
  };
}

export interface ArchiveResult {
  status: 'archived' | 'nothing_to_archive' | 'chain_invalid';
  file: string | null;
  statement: SignedArchiveStatement | null;
  reason: string | null;
}

export interface AuditExportDeps {
  db: Db;
  repository: AuditRepository;
  recorder: Pick<AuditRecorder, 'record'>;
  signer: AuditSigner;
  /** Archival verifies MACs too: an event written without the key is never archived (and so never deleted). */
  keyring: AuditMacKeyring;
  now?: () => Date;
  batchSize?: number;
}

/** Exports (JSON Lines) and the retention procedure that moves an old prefix of the chain to archive files. */
export function createAuditExporter({ db, repository, recorder, signer, keyring, now = () => new Date(), batchSize = 5_000 }: AuditExportDeps) {
  async function resolveRange(range: ExportRange): Promise<{ first: number; last: number } | null> {
    const head = await repository.head(db);
    if (range.from !== undefined || range.to !== undefined) {
      if (range.fromSeq !== undefined || range.toSeq !== undefined) {
        throw new ValidationError('Choose either a period or a seq range', [{ pointer: '/from', detail: 'cannot be combined with a seq range' }]);
      }
      const found = await repository.seqRangeForPeriod(db, range.from ?? new Date(0), range.to ?? new Date(8.64e15));
      return found ? { first: found.first, last: Math.min(found.last, head.seq) } : null;
    }
    const minSeq = (await repository.minSeq(db)) ?? head.seq + 1;
    const first = Math.max(range.fromSeq ?? minSeq, minSeq);
    const last = Math.min(range.toSeq ?? head.seq, head.seq);
    return first <= last ? { first, last } : null;
  }

  /** Streams events first..last in seq order, in batches. */
  async function* events(first: number, last: number): AsyncGenerator<AuditEvent> {
    for (let after = first - 1; after < last; after = Math.min(after + batchSize, last)) {
      yield* await repository.chainRange(db, after, Math.min(after + batchSize, last));
    }
  }

  async function* storedEvents(first: number, last: number): AsyncGenerator<StoredAuditEvent> {
    for (let after = first - 1; after < last; after = Math.min(after + batchSize, last)) {
      yield* await repository.storedChainRange(db, after, Math.min(after + batchSize, last));
    }
  }

  async function exportTo(range: ExportRange, write: (line: string) => Promise<void>): Promise<ExportSummary> {
    const resolved = await resolveRange(range);
    const summary: ExportSummary = { first_seq: null, last_seq: null, count: 0, first_prev_hash: null, last_hash: null };
    if (!resolved) return summary;
    for await (const event of events(resolved.first, resolved.last)) {
      if (summary.first_seq === null) {
        summary.first_seq = event.seq;
        summary.first_prev_hash = event.prev_hash;
      }
      summary.last_seq = event.seq;
      summary.last_hash = event.hash;
      summary.count += 1;
      await write(`${JSON.stringify(event)}\n`);
    }
    return summary;
  }

  return {
    events,
    resolveRange,

    /** JSON Lines, one event per line with prev_hash and hash, in seq order. */
    exportTo,

    async exportToStream(range: ExportRange, stream: NodeJS.WritableStream): Promise<ExportSummary> {
      return exportTo(range, (line) => writeWithBackpressure(stream, line));
    },

    /**
     * Retention: moves the events created before `before` (from the start of the live chain) to a JSON Lines file in
     * `dir`, with a signed archive record, then removes them from the table. The first live event's prev_hash is the
     * archive's last hash, so the live chain still verifies, and the file verifies offline on its own.
     */
    async archive(options: { before: Date; dir: string }): Promise<ArchiveResult> {
      const head = await repository.head(db);
      const previous = await repository.latestArchive(db);
      const fromSeq = (previous?.toSeq ?? 0) + 1;
      const firstKept = await repository.batchAfter(db, fromSeq - 1, head.seq, 1, { from: options.before });
      const toSeq = firstKept[0] ? firstKept[0].seq - 1 : head.seq;
      if (toSeq < fromSeq) return { status: 'nothing_to_archive', file: null, statement: null, reason: 'no events older than the retention limit' };

      fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
      const fileName = `cdsa-audit-${String(fromSeq).padStart(12, '0')}-${String(toSeq).padStart(12, '0')}.jsonl`;
      const file = path.join(options.dir, fileName);
      const partial = `${file}.partial`;
      const stream = fs.createWriteStream(partial, { mode: 0o600 });
      const digest = createHash('sha256');
      const anchor: ChainAnchor = previous ? { seq: previous.toSeq, hash: previous.lastHash } : GENESIS_ANCHOR;
      const verifier = createChainVerifier(anchor, [], { keyring });
      let count = 0;
      let firstPrevHash = previous?.lastHash ?? GENESIS_HASH;
      let lastHash = anchor.hash;
      try {
        for await (const stored of storedEvents(fromSeq, toSeq)) {
          // Never archive (and so delete) anything that does not verify: the evidence would be lost.
          if (!verifier.push(stored)) break;
          // The file holds the contract's fields, like an export (the MAC is verified here, with the key).
          const { mac: _mac, ...event } = stored;
          if (count === 0) firstPrevHash = event.prev_hash;
          const line = `${JSON.stringify(event)}\n`;
          digest.update(line);
          await writeWithBackpressure(stream, line);
          count += 1;
          lastHash = event.hash;
        }
        stream.end();
        await once(stream, 'finish');
      } catch (error) {
        stream.destroy();
        fs.rmSync(partial, { force: true });
        throw error;
      }
      const check = verifier.finish();
      if (!check.valid || check.last_seq !== toSeq) {
        fs.rmSync(partial, { force: true });
        return { status: 'chain_invalid', file: null, statement: null, reason: `the chain does not verify (${check.reason ?? `stops at ${check.last_seq}`}); nothing was archived` };
      }
      const handle = fs.openSync(partial, 'r');
      try {
        fs.fsyncSync(handle);
      } finally {
        fs.closeSync(handle);
      }
      fs.renameSync(partial, file);

      const statement = signer.signArchive({
        from_seq: fromSeq,
        to_seq: toSeq,
        first_prev_hash: firstPrevHash,
        last_hash: lastHash,
        event_count: count,
        file_sha256: digest.digest('hex'),
        archived_at: now().toISOString(),
      });
      fs.writeFileSync(`${file}.archive.json`, `${JSON.stringify({ ...statement, file: fileName, public_key_pem: signer.publicKeyPem }, null, 2)}\n`, { mode: 0o600 });

      await withTransaction(db, async ({ tx }) => {
        await repository.insertArchive(tx, {
          fromSeq,
          toSeq,
          firstPrevHash,
          lastHash,
          eventCount: count,
          fileName,
          fileSha256: statement.file_sha256,
          archivedAt: new Date(statement.archived_at),
          keyId: statement.key_id,
          signature: statement.signature,
        });
        await repository.deleteArchivedPrefix(tx, toSeq);
        await recorder.record(tx, {
          eventType: 'AUDIT_RANGE_ARCHIVED',
          resourceType: 'audit_archive',
          resourceId: fileName,
          details: { from_seq: fromSeq, to_seq: toSeq, event_count: count, last_hash: lastHash, file_sha256: statement.file_sha256 },
          context: SYSTEM_CONTEXT,
        });
      });
      return { status: 'archived', file, statement, reason: null };
    },
  };
}

export type AuditExporter = ReturnType<typeof createAuditExporter>;

import type { DbOrTx } from '../../db/client.js';
import { ValidationError } from '../../lib/errors.js';
import { createChainVerifier, GENESIS_ANCHOR, type ChainAnchor, type ChainWitness } from './audit.chain.js';
import type { AuditMacKeyring } from './audit.mac.js';
import type { AuditArchiveRow, AuditCheckpointRow, AuditRepository } from './audit.repository.js';
import { createSinkComparator, readSinkFiles, type SinkComparison } from './audit.sink-verify.js';
import { verifyArchiveSignature, verifyCheckpointSignature, type AuditVerifyingKey, type SignedArchiveStatement, type SignedCheckpoint } from './audit.signing.js';

export interface VerifyOptions {
  fromSeq?: number;
  toSeq?: number;
  /** Checkpoints kept outside the database (an exported file); verified against the trusted keys first. */
  checkpoints?: SignedCheckpoint[];
  /**
   * The audit sinks' files (every instance's), compared with the database in both directions. Read after the head,
   * so every event up to the head is already in them.
   */
  sinkFiles?: string[];
}

export interface VerifyReport {
  valid: boolean;
  checked: number;
  /** The chain head when verification started. */
  head_seq: number;
  head_hash: string;
  first_invalid_seq: number | null;
  reason: string | null;
  from_seq: number;
  to_seq: number;
  /** Signed checkpoints the verified events were compared with. */
  checkpoints_checked: number;
  /** Events up to this seq were moved to archive files (docs/audit.md, retention); 0 when none were. */
  archived_through: number;
  /** The comparison with the audit sinks, when their files were given. */
  sink: SinkComparison | null;
}

export function presentCheckpoint(row: AuditCheckpointRow): SignedCheckpoint {
  return { seq: row.seq, hash: row.hash, time: row.time.toISOString(), key_id: row.keyId, signature: row.signature };
}

export function presentArchive(row: AuditArchiveRow): SignedArchiveStatement {
  return {
    from_seq: row.fromSeq,
    to_seq: row.toSeq,
    first_prev_hash: row.firstPrevHash,
    last_hash: row.lastHash,
    event_count: row.eventCount,
    file_sha256: row.fileSha256,
    archived_at: row.archivedAt.toISOString(),
    key_id: row.keyId,
    signature: row.signature,
  };
}

export interface AuditVerifierDeps {
  db: DbOrTx;
  repository: AuditRepository;
  /** Keys whose signatures are trusted: the current signing key, plus retired ones an operator supplies. */
  keys: readonly AuditVerifyingKey[];
  /** The MAC keys: every event must carry a MAC that verifies under one of them. */
  keyring: AuditMacKeyring;
  batchSize?: number;
}

/**
 * Recomputes the chain from the database in batches (constant memory, any length) and compares it with every signed
 * checkpoint it can: those in the database and any supplied from outside. Checkpoints are read before the head, so
 * one signed meanwhile never looks like a truncated tail.
 */
export function createAuditVerifier({ db, repository, keys, keyring, batchSize = 5_000 }: AuditVerifierDeps) {
  return {
    async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
      if (options.fromSeq !== undefined && options.toSeq !== undefined && options.fromSeq > options.toSeq) {
        throw new ValidationError('Invalid range', [{ pointer: '/to_seq', detail: 'must not be less than from_seq' }]);
      }
      const storedCheckpoints = await repository.checkpointsBetween(db, 0, options.toSeq ?? Number.MAX_SAFE_INTEGER);
      const head = await repository.head(db);
      const archive = await repository.latestArchive(db);
      const fromSeq = Math.max(1, options.fromSeq ?? 1);
      const toSeq = Math.min(options.toSeq ?? head.seq, head.seq);
      const report = (result: Partial<VerifyReport>): VerifyReport => ({
        valid: true,
        checked: 0,
        head_seq: head.seq,
        head_hash: head.hash,
        first_invalid_seq: null,
        reason: null,
        from_seq: fromSeq,
        to_seq: toSeq,
        checkpoints_checked: 0,
        archived_through: archive?.toSeq ?? 0,
        sink: null,
        ...result,
      });

      if (archive && !verifyArchiveSignature(presentArchive(archive), keys)) {
        return report({ valid: false, first_invalid_seq: archive.fromSeq, reason: `the archive record for events ${archive.fromSeq}-${archive.toSeq} is not signed by a trusted key` });
      }

      let anchor: ChainAnchor;
      if (archive && fromSeq - 1 <= archive.toSeq) {
        anchor = { seq: archive.toSeq, hash: archive.lastHash };
      } else if (fromSeq === 1) {
        anchor = GENESIS_ANCHOR;
      } else {
        const before = await repository.findBySeq(db, fromSeq - 1);
        if (!before) return report({ valid: false, first_invalid_seq: fromSeq - 1, reason: `event ${fromSeq - 1}, where the range starts, is missing` });
        anchor = { seq: before.seq, hash: before.hash, created_at: before.createdAt.toISOString() };
      }

      const witnesses: ChainWitness[] = [];
      const full = options.toSeq === undefined || options.toSeq >= head.seq;
      if (full && head.seq > anchor.seq) witnesses.push({ seq: head.seq, hash: head.hash, source: 'chain head record' });
      const supplied = (options.checkpoints ?? []).map((checkpoint) => ({ checkpoint, external: true }));
      const stored = storedCheckpoints.map((row) => ({ checkpoint: presentCheckpoint(row), external: false }));
      const seen = new Set<string>();
      for (const { checkpoint, external } of [...supplied, ...stored]) {
        // A supplied file usually repeats a stored checkpoint; each counts once.
        if (seen.has(checkpoint.signature)) continue;
        seen.add(checkpoint.signature);
        const known = keys.some((key) => key.keyId === checkpoint.key_id);
        // A stored checkpoint under a key nobody supplied is unverifiable, not evidence; a supplied one must verify.
        if (!known && !external) continue;
        if (!verifyCheckpointSignature(checkpoint, keys)) {
          return report({
            valid: false,
            first_invalid_seq: checkpoint.seq,
            reason: `${external ? 'the supplied' : 'a stored'} checkpoint for event ${checkpoint.seq} does not carry a valid signature by a trusted key`,
          });
        }
        if (options.toSeq !== undefined && checkpoint.seq > options.toSeq) continue;
        if (checkpoint.seq === anchor.seq && checkpoint.hash !== anchor.hash) {
          return report({ valid: false, first_invalid_seq: Math.max(anchor.seq, 1), reason: `event ${anchor.seq} differs from the checkpoint signed at ${checkpoint.time}` });
        }
        if (checkpoint.seq > anchor.seq) {
          witnesses.push({ seq: checkpoint.seq, hash: checkpoint.hash, source: `checkpoint signed at ${checkpoint.time}` });
        }
      }

      const verifier = createChainVerifier(anchor, witnesses, { keyring });
      const sink = options.sinkFiles ? createSinkComparator(await readSinkFiles(options.sinkFiles), { afterSeq: anchor.seq, throughSeq: full ? null : toSeq }) : null;
      // Seq windows, not "the next N rows": a gap (a deleted event) must not end the walk early.
      const fetch = (after: number) => repository.storedChainRange(db, after, Math.min(after + batchSize, toSeq));
      let after = anchor.seq;
      // The next window is read while this one is hashed: the database and the CPU work at the same time.
      let next = after < toSeq ? fetch(after) : null;
      while (next) {
        const rows = await next;
        after = Math.min(after + batchSize, toSeq);
        next = after < toSeq ? fetch(after) : null;
        if (!rows.every((event) => (sink?.observe(event), verifier.push(event)))) {
          next?.catch(() => undefined);
          break;
        }
      }
      const chain = verifier.finish();
      if (sink && full) {
        // Events appended since the head was read may already be in the sinks: they are not missing.
        for (let after = head.seq, last = sink.maxSeq(); after < last; after = Math.min(after + batchSize, last)) {
          for (const event of await repository.storedChainRange(db, after, Math.min(after + batchSize, last))) sink.observe(event, false);
        }
      }
      const sinkResult = sink ? await sink.finish((xids) => repository.transactionStatus(db, xids)) : null;
      // The earliest problem either check found.
      const result =
        sinkResult?.first_invalid_seq != null && (chain.first_invalid_seq === null || sinkResult.first_invalid_seq < chain.first_invalid_seq)
          ? { ...chain, valid: false, first_invalid_seq: sinkResult.first_invalid_seq, reason: sinkResult.reason }
          : chain;
      // Events the range was meant to cover but that are not there (checked only up to the requested end).
      if (result.valid && result.last_seq < toSeq) {
        return report({
          valid: false,
          checked: result.checked,
          first_invalid_seq: result.last_seq + 1,
          reason: `event ${result.last_seq + 1} is missing`,
          checkpoints_checked: witnesses.filter((w) => w.source !== 'chain head record' && w.seq <= result.last_seq).length,
          sink: sinkResult,
        });
      }
      return report({
        valid: result.valid,
        checked: result.checked,
        first_invalid_seq: result.first_invalid_seq,
        reason: result.reason,
        checkpoints_checked: witnesses.filter((w) => w.source !== 'chain head record' && w.seq <= result.last_seq).length,
        sink: sinkResult,
      });
    },
  };
}

export type AuditVerifier = ReturnType<typeof createAuditVerifier>;

import type { Db } from '../../db/client.js';
import type { AuditMacKeyring } from './audit.mac.js';
import type { AuditRepository } from './audit.repository.js';
import type { AuditRecorder } from './audit.service.js';

export interface KeyingResult {
  /** Rows that received their MAC now. */
  keyed: number;
  /** The last of them (null when there was nothing to do). */
  through_seq: number | null;
}

/**
 * The migration to a keyed chain: rows written before the chain had a MAC key get one, at start-up, the first time a
 * key is available, and the cut-over is itself recorded (`AUDIT_CHAIN_KEYED`, keyed like every later event).
 *
 * Only the prefix of the chain before its first keyed row is keyed: a row without a MAC after that point was not
 * written by CDSA (forged by someone with database access) and must stay visible to verification. The MAC of a
 * keyed-at-upgrade row proves only that the row existed at that moment; what happened to it before is covered by the
 * hash chain and the signed checkpoints, as before. The chain head is locked throughout, so appends (and other
 * instances starting at the same time) wait.
 */
export async function keyUnkeyedEvents(deps: {
  db: Db;
  repository: Pick<AuditRepository, 'lockHead' | 'macsAfter' | 'setMacs'>;
  keyring: AuditMacKeyring;
  recorder: Pick<AuditRecorder, 'record'>;
  batchSize?: number;
}): Promise<KeyingResult> {
  const { db, repository, keyring, recorder, batchSize = 5_000 } = deps;
  // Cheap when there is nothing to do (every start after the first): one look at the oldest live row.
  const first = await repository.macsAfter(db, 0, 1);
  if (first.length === 0 || first[0]!.mac !== null) return { keyed: 0, through_seq: null };

  return db.transaction(async (tx) => {
    await repository.lockHead(tx);
    let after = 0;
    let keyed = 0;
    let through: number | null = null;
    for (;;) {
      const rows = await repository.macsAfter(tx, after, batchSize);
      const firstKeyed = rows.findIndex((row) => row.mac !== null);
      const unkeyed = firstKeyed === -1 ? rows : rows.slice(0, firstKeyed);
      await repository.setMacs(
        tx,
        unkeyed.map((row) => ({ seq: row.seq, mac: keyring.mac(row.hash) })),
      );
      keyed += unkeyed.length;
      if (unkeyed.length > 0) through = unkeyed[unkeyed.length - 1]!.seq;
      if (firstKeyed !== -1 || rows.length < batchSize) break;
      after = rows[rows.length - 1]!.seq;
    }
    if (keyed > 0) {
      await recorder.record(tx, {
        eventType: 'AUDIT_CHAIN_KEYED',
        resourceType: 'audit_chain',
        details: { keyed_events: keyed, through_seq: through, key_id: keyring.activeKeyId },
      });
    }
    return { keyed, through_seq: through };
  });
}

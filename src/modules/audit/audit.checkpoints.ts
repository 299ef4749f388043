import type { Db } from '../../db/client.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { decodeCursor, DEFAULT_PAGE_SIZE, encodeCursor } from '../../lib/pagination.js';
import { SYSTEM_CONTEXT, type Actor, type RequestContext } from '../auth/permissions.js';
import type { AuditRepository } from './audit.repository.js';
import type { AuditRecorder } from './audit.service.js';
import type { AuditSigner, SignedCheckpoint } from './audit.signing.js';
import { presentCheckpoint } from './audit.verify.js';

export interface CheckpointExport {
  key_id: string;
  public_key_pem: string;
  items: SignedCheckpoint[];
  next_cursor: string | null;
}

/** A checkpoint file as `cdsa audit checkpoint` writes it: the signed statement and the key to check it with. */
export interface CheckpointFile extends SignedCheckpoint {
  public_key_pem: string;
}

export interface CheckpointServiceDeps {
  db: Db;
  repository: AuditRepository;
  recorder: Pick<AuditRecorder, 'record'>;
  signer: AuditSigner;
  now?: () => Date;
}

/**
 * Signed checkpoints: "the chain had event `seq` with `hash` at `time`", signed with a key the database never sees.
 * Anyone holding one detects later truncation of the tail or a rewrite of anything before it.
 */
export function createCheckpointService({ db, repository, recorder, signer, now = () => new Date() }: CheckpointServiceDeps) {
  return {
    /** Signs the current head on request; the request itself is audited (its event comes after the signed head). */
    async create(actor: Actor | null, context: RequestContext = SYSTEM_CONTEXT): Promise<CheckpointFile> {
      return withTransaction(db, async ({ tx }) => {
        const head = await repository.head(tx);
        const signed = signer.signCheckpoint({ seq: head.seq, hash: head.hash, time: now().toISOString() });
        await repository.insertCheckpoint(tx, {
          seq: signed.seq,
          hash: signed.hash,
          time: new Date(signed.time),
          keyId: signed.key_id,
          signature: signed.signature,
          createdBy: actor?.userId ?? null,
        });
        await recorder.record(tx, {
          eventType: 'AUDIT_CHECKPOINT_SIGNED',
          userId: actor?.userId ?? null,
          sessionId: actor?.sessionId ?? null,
          resourceType: 'audit_checkpoint',
          resourceId: String(signed.seq),
          details: { seq: signed.seq, hash: signed.hash, key_id: signed.key_id },
          context,
        });
        return { ...signed, public_key_pem: signer.publicKeyPem };
      });
    },

    /** The periodic checkpoint: nothing is signed (or audited) when the head has not moved since the last one. */
    async createPeriodic(): Promise<SignedCheckpoint | null> {
      const [head, latest] = await Promise.all([repository.head(db), repository.latestCheckpoint(db)]);
      if (latest && latest.seq === head.seq && latest.keyId === signer.keyId) return null;
      const signed = signer.signCheckpoint({ seq: head.seq, hash: head.hash, time: now().toISOString() });
      await repository.insertCheckpoint(db, {
        seq: signed.seq,
        hash: signed.hash,
        time: new Date(signed.time),
        keyId: signed.key_id,
        signature: signed.signature,
        createdBy: null,
      });
      return signed;
    },

    async latest(): Promise<CheckpointFile | null> {
      const row = await repository.latestCheckpoint(db);
      return row ? { ...presentCheckpoint(row), public_key_pem: signer.publicKeyPem } : null;
    },

    async list(query: { limit?: number; cursor?: string }): Promise<CheckpointExport> {
      const limit = query.limit ?? DEFAULT_PAGE_SIZE;
      const cursor = decodeCursor(query.cursor, { seq: 'bigint', time: 'timestamp' });
      const before = cursor ? { seq: cursor.seq, time: new Date(cursor.time) } : undefined;
      const rows = await repository.listCheckpoints(db, before, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        key_id: signer.keyId,
        public_key_pem: signer.publicKeyPem,
        items: page.map(presentCheckpoint),
        next_cursor: rows.length > limit && last ? encodeCursor({ seq: last.seq, time: last.time.toISOString() }) : null,
      };
    },
  };
}

export type CheckpointService = ReturnType<typeof createCheckpointService>;

import { eq } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client.js';
import { auditChainHead, auditEvents } from '../../db/schema/audit.js';

export type AuditEventRow = typeof auditEvents.$inferSelect;
export type NewAuditEventRow = typeof auditEvents.$inferInsert;

export function createAuditRepository() {
  return {
    /** Locks the chain head until the caller's transaction ends: appends are serialised, the chain stays gap-free. */
    async lockHead(tx: Tx): Promise<{ seq: number; hash: string }> {
      const rows = await tx
        .select({ seq: auditChainHead.seq, hash: auditChainHead.hash })
        .from(auditChainHead)
        .where(eq(auditChainHead.id, 1))
        .for('update');
      const head = rows[0];
      if (!head) throw new Error('audit chain head is missing (migrations not applied?)');
      return head;
    },

    async insertMany(tx: Tx, rows: NewAuditEventRow[]): Promise<void> {
      await tx.insert(auditEvents).values(rows);
    },

    async moveHead(tx: Tx, seq: number, hash: string): Promise<void> {
      await tx.update(auditChainHead).set({ seq, hash }).where(eq(auditChainHead.id, 1));
    },

    async head(db: DbOrTx): Promise<{ seq: number; hash: string }> {
      const rows = await db.select({ seq: auditChainHead.seq, hash: auditChainHead.hash }).from(auditChainHead).where(eq(auditChainHead.id, 1));
      const head = rows[0];
      if (!head) throw new Error('audit chain head is missing (migrations not applied?)');
      return head;
    },
  };
}

export type AuditRepository = ReturnType<typeof createAuditRepository>;

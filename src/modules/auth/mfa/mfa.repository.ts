import { and, eq, isNotNull, isNull, or, lt, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../../db/client.js';
import { recoveryCodes, users, userTotp } from '../../../db/schema/users.js';

export type TotpRow = typeof userTotp.$inferSelect;

export function createMfaRepository() {
  return {
    async findTotp(db: DbOrTx, userId: string): Promise<TotpRow | undefined> {
      const [row] = await db.select().from(userTotp).where(eq(userTotp.userId, userId)).limit(1);
      return row;
    },

    /** A new pending (unconfirmed) factor, replacing a previous pending one; never a confirmed one. False then. */
    async putPendingTotp(db: DbOrTx, userId: string, secretCiphertext: string): Promise<boolean> {
      const rows = await db
        .insert(userTotp)
        .values({ userId, secretCiphertext })
        .onConflictDoUpdate({
          target: userTotp.userId,
          set: { secretCiphertext, createdAt: sql`now()`, lastUsedStep: null },
          setWhere: isNull(userTotp.confirmedAt),
        })
        .returning({ userId: userTotp.userId });
      return rows.length === 1;
    },

    /**
     * Claims a time step for a user's factor: succeeds once per step, and only for a step later than any accepted
     * before — two requests with the same code, on any instance, cannot both pass. `confirmed` says which state the
     * factor must be in (pending for the enrolment's confirmation, confirmed otherwise).
     */
    async claimStep(db: DbOrTx, userId: string, step: number, confirmed: boolean): Promise<boolean> {
      const rows = await db
        .update(userTotp)
        .set({ lastUsedStep: step })
        .where(
          and(
            eq(userTotp.userId, userId),
            confirmed ? isNotNull(userTotp.confirmedAt) : isNull(userTotp.confirmedAt),
            or(isNull(userTotp.lastUsedStep), lt(userTotp.lastUsedStep, step)),
          ),
        )
        .returning({ userId: userTotp.userId });
      return rows.length === 1;
    },

    async confirmTotp(db: DbOrTx, userId: string, at: Date): Promise<void> {
      await db.update(userTotp).set({ confirmedAt: at }).where(eq(userTotp.userId, userId));
      await db.update(users).set({ mfaEnabled: true, updatedAt: sql`now()` }).where(eq(users.id, userId));
    },

    async replaceRecoveryCodes(db: DbOrTx, userId: string, codeHashes: string[]): Promise<void> {
      await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
      await db.insert(recoveryCodes).values(codeHashes.map((codeHash) => ({ userId, codeHash })));
    },

    /** Marks an unused code used, atomically (once, whatever the concurrency); returns how many remain unused. */
    async useRecoveryCode(db: DbOrTx, userId: string, codeHash: string, at: Date): Promise<{ used: boolean; remaining: number }> {
      const rows = await db
        .update(recoveryCodes)
        .set({ usedAt: at })
        .where(and(eq(recoveryCodes.userId, userId), eq(recoveryCodes.codeHash, codeHash), isNull(recoveryCodes.usedAt)))
        .returning({ id: recoveryCodes.id });
      const [count] = await db
        .select({ remaining: sql<number>`count(*)::int` })
        .from(recoveryCodes)
        .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)));
      return { used: rows.length === 1, remaining: count?.remaining ?? 0 };
    },

    async removeFactor(db: DbOrTx, userId: string): Promise<void> {
      await db.delete(userTotp).where(eq(userTotp.userId, userId));
      await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
      await db.update(users).set({ mfaEnabled: false, updatedAt: sql`now()` }).where(eq(users.id, userId));
    },
  };
}

export type MfaRepository = ReturnType<typeof createMfaRepository>;

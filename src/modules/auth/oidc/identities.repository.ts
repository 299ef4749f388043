import { and, eq } from 'drizzle-orm';
import type { DbOrTx } from '../../../db/client.js';
import { userIdentities, users } from '../../../db/schema/users.js';
import type { UserRow } from '../../users/users.repository.js';

export function createIdentitiesRepository() {
  return {
    /** E-mails are stored lower-cased (users.email is unique). */
    async findUserByEmail(db: DbOrTx, email: string): Promise<UserRow | undefined> {
      const [row] = await db.select().from(users).where(eq(users.email, email.toLowerCase())).limit(1);
      return row;
    },

    async findUserId(db: DbOrTx, issuer: string, subject: string): Promise<string | undefined> {
      const [row] = await db
        .select({ userId: userIdentities.userId })
        .from(userIdentities)
        .where(and(eq(userIdentities.issuer, issuer), eq(userIdentities.subject, subject)))
        .limit(1);
      return row?.userId;
    },

    /** False when this provider account is already linked (to anyone): the unique index decides under concurrency. */
    async link(db: DbOrTx, input: { userId: string; issuer: string; subject: string; at: Date }): Promise<boolean> {
      const rows = await db
        .insert(userIdentities)
        .values({ userId: input.userId, issuer: input.issuer, subject: input.subject, lastLoginAt: input.at })
        .onConflictDoNothing()
        .returning({ id: userIdentities.id });
      return rows.length === 1;
    },

    async touch(db: DbOrTx, issuer: string, subject: string, at: Date): Promise<void> {
      await db
        .update(userIdentities)
        .set({ lastLoginAt: at })
        .where(and(eq(userIdentities.issuer, issuer), eq(userIdentities.subject, subject)));
    },
  };
}

export type IdentitiesRepository = ReturnType<typeof createIdentitiesRepository>;

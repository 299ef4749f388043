import { eq, like } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { secrets, systemCredentials } from '../../db/schema/vault.js';

export type SystemCredentialRow = typeof systemCredentials.$inferSelect;
export type LegacySecretRow = Pick<typeof secrets.$inferSelect, 'id' | 'name' | 'currentVersion' | 'encryptedValue' | 'createdBy' | 'updatedAt' | 'deletedAt'>;

/** LIKE pattern of a component's names: its prefix with LIKE's wildcards escaped, then anything. */
function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Queries of the system credentials table (and of the users' secrets they are moved out of). */
export function createSystemCredentialsRepository() {
  return {
    async findByName(db: DbOrTx, name: string, options: { forUpdate?: boolean } = {}): Promise<SystemCredentialRow | undefined> {
      const query = db.select().from(systemCredentials).where(eq(systemCredentials.name, name));
      const rows = options.forUpdate ? await query.for('update') : await query;
      return rows[0];
    },

    /** Undefined when another transaction inserted the name first. */
    async insert(
      db: DbOrTx,
      input: { id: string; name: string; component: string; encryptedValue: string; createdBy: string | null; now: Date },
    ): Promise<SystemCredentialRow | undefined> {
      const [row] = await db
        .insert(systemCredentials)
        .values({ ...input, version: 1, createdAt: input.now, updatedAt: input.now })
        .onConflictDoNothing()
        .returning();
      return row;
    },

    async replaceValue(db: DbOrTx, id: string, input: { encryptedValue: string; version: number; now: Date }): Promise<SystemCredentialRow> {
      const [row] = await db
        .update(systemCredentials)
        .set({ encryptedValue: input.encryptedValue, version: input.version, updatedAt: input.now })
        .where(eq(systemCredentials.id, id))
        .returning();
      return row!;
    },

    async remove(db: DbOrTx, id: string): Promise<void> {
      await db.delete(systemCredentials).where(eq(systemCredentials.id, id));
    },

    async touch(db: DbOrTx, id: string, now: Date): Promise<void> {
      await db.update(systemCredentials).set({ lastUsedAt: now }).where(eq(systemCredentials.id, id));
    },

    /** Users' secrets (live or soft-deleted) whose names are in a component's namespace, locked. */
    async lockSecretsNamed(db: DbOrTx, prefix: string): Promise<LegacySecretRow[]> {
      return db
        .select({
          id: secrets.id,
          name: secrets.name,
          currentVersion: secrets.currentVersion,
          encryptedValue: secrets.encryptedValue,
          createdBy: secrets.createdBy,
          updatedAt: secrets.updatedAt,
          deletedAt: secrets.deletedAt,
        })
        .from(secrets)
        .where(like(secrets.name, prefixPattern(prefix)))
        .orderBy(secrets.id)
        .for('update');
    },

    /** Hard-deletes a user secret and (by cascade) every version of it. */
    async deleteSecret(db: DbOrTx, id: string): Promise<void> {
      await db.delete(secrets).where(eq(secrets.id, id));
    },
  };
}

export type SystemCredentialsRepository = ReturnType<typeof createSystemCredentialsRepository>;

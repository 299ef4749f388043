import { and, asc, desc, eq, gt, isNotNull, isNull, lt, lte, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { secrets, secretVersions } from '../../db/schema/vault.js';

export type SecretRow = typeof secrets.$inferSelect;
export type SecretVersionRow = typeof secretVersions.$inferSelect;
export type SecretVersionMetadata = Omit<SecretVersionRow, 'encryptedValue'>;

const versionMetadata = {
  id: secretVersions.id,
  secretId: secretVersions.secretId,
  version: secretVersions.version,
  createdBy: secretVersions.createdBy,
  createdAt: secretVersions.createdAt,
};

/** Queries of the vault's tables; "live" means not soft-deleted. */
export function createVaultRepository() {
  return {
    /** Inserts the secret with its first version; undefined when a live secret already has the name. */
    async insert(
      db: DbOrTx,
      input: { id: string; name: string; description: string | null; encryptedValue: string; createdBy: string | null; now: Date },
    ): Promise<SecretRow | undefined> {
      const [row] = await db
        .insert(secrets)
        .values({
          id: input.id,
          name: input.name,
          description: input.description,
          currentVersion: 1,
          encryptedValue: input.encryptedValue,
          createdBy: input.createdBy,
          createdAt: input.now,
          updatedAt: input.now,
        })
        .onConflictDoNothing()
        .returning();
      if (!row) return undefined;
      await db.insert(secretVersions).values({
        secretId: input.id,
        version: 1,
        encryptedValue: input.encryptedValue,
        createdBy: input.createdBy,
        createdAt: input.now,
      });
      return row;
    },

    async findLive(db: DbOrTx, id: string, options: { forUpdate?: boolean } = {}): Promise<SecretRow | undefined> {
      const query = db
        .select()
        .from(secrets)
        .where(and(eq(secrets.id, id), isNull(secrets.deletedAt)));
      const rows = options.forUpdate ? await query.for('update') : await query;
      return rows[0];
    },

    async findLiveByName(db: DbOrTx, name: string): Promise<SecretRow | undefined> {
      const rows = await db
        .select()
        .from(secrets)
        .where(and(eq(secrets.name, name), isNull(secrets.deletedAt)));
      return rows[0];
    },

    /** Live secrets by name, `limit` rows after `afterName`. */
    async listLive(db: DbOrTx, limit: number, afterName?: string): Promise<SecretRow[]> {
      return db
        .select()
        .from(secrets)
        .where(and(isNull(secrets.deletedAt), afterName === undefined ? undefined : gt(secrets.name, afterName)))
        .orderBy(asc(secrets.name))
        .limit(limit);
    },

    async addVersion(
      db: DbOrTx,
      input: { secretId: string; version: number; encryptedValue: string; createdBy: string | null; now: Date; description?: string | null },
    ): Promise<SecretRow> {
      await db.insert(secretVersions).values({
        secretId: input.secretId,
        version: input.version,
        encryptedValue: input.encryptedValue,
        createdBy: input.createdBy,
        createdAt: input.now,
      });
      const [row] = await db
        .update(secrets)
        .set({
          currentVersion: input.version,
          encryptedValue: input.encryptedValue,
          updatedAt: input.now,
          ...(input.description === undefined ? {} : { description: input.description }),
        })
        .where(eq(secrets.id, input.secretId))
        .returning();
      return row!;
    },

    async setDescription(db: DbOrTx, id: string, description: string | null, now: Date): Promise<SecretRow> {
      const [row] = await db.update(secrets).set({ description, updatedAt: now }).where(eq(secrets.id, id)).returning();
      return row!;
    },

    async touch(db: DbOrTx, id: string, now: Date): Promise<void> {
      await db.update(secrets).set({ lastAccessedAt: now }).where(eq(secrets.id, id));
    },

    async softDelete(db: DbOrTx, id: string, now: Date): Promise<void> {
      await db.update(secrets).set({ deletedAt: now, updatedAt: now }).where(eq(secrets.id, id));
    },

    async findVersion(db: DbOrTx, secretId: string, version: number): Promise<SecretVersionRow | undefined> {
      const rows = await db
        .select()
        .from(secretVersions)
        .where(and(eq(secretVersions.secretId, secretId), eq(secretVersions.version, version)));
      return rows[0];
    },

    /** Versions newest first, `limit` rows below `beforeVersion`. */
    async listVersions(db: DbOrTx, secretId: string, limit: number, beforeVersion?: number): Promise<SecretVersionMetadata[]> {
      return db
        .select(versionMetadata)
        .from(secretVersions)
        .where(and(eq(secretVersions.secretId, secretId), beforeVersion === undefined ? undefined : lt(secretVersions.version, beforeVersion)))
        .orderBy(desc(secretVersions.version))
        .limit(limit);
    },

    /** Hard-deletes up to `limit` secrets soft-deleted at or before `cutoff` (versions go with them). */
    async purgeDeletedBefore(db: DbOrTx, cutoff: Date, limit: number): Promise<{ id: string; name: string }[]> {
      const due = db
        .select({ id: secrets.id })
        .from(secrets)
        .where(and(isNotNull(secrets.deletedAt), lte(secrets.deletedAt, cutoff)))
        .orderBy(asc(secrets.deletedAt))
        .limit(limit);
      return db
        .delete(secrets)
        .where(sql`${secrets.id} in ${due}`)
        .returning({ id: secrets.id, name: secrets.name });
    },

    /**
     * Makes every secret's `encrypted_value` the exact ciphertext of its current version again (after rotation has
     * rewrapped the versions). Returns how many rows changed.
     */
    async syncCurrentCiphertexts(db: DbOrTx): Promise<number> {
      const rows = await db
        .update(secrets)
        .set({ encryptedValue: secretVersions.encryptedValue })
        .from(secretVersions)
        .where(
          and(
            eq(secretVersions.secretId, secrets.id),
            eq(secretVersions.version, secrets.currentVersion),
            sql`${secrets.encryptedValue} <> ${secretVersions.encryptedValue}`,
          ),
        )
        .returning({ id: secrets.id });
      return rows.length;
    },
  };
}

export type VaultRepository = ReturnType<typeof createVaultRepository>;

import { and, desc, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { apiKeys, type ApiKeyScope } from '../../db/schema/api-keys.js';
import { users } from '../../db/schema/users.js';
import type { Label } from '../../lib/labels.js';
import type { Role } from '../auth/permissions.js';

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export interface NewApiKeyRow {
  userId: string;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: ApiKeyScope[];
  expiresAt: Date;
  createdAt: Date;
}

/** A key with its user's current state, as one request's authentication reads it. */
export interface ApiKeyCredential {
  id: string;
  keyHash: string;
  scopes: ApiKeyScope[];
  expiresAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  user: { id: string; username: string; role: Role; clearance: Label | null; isActive: boolean };
}

export function createApiKeysRepository() {
  return {
    async insert(db: DbOrTx, row: NewApiKeyRow): Promise<ApiKeyRow> {
      const [inserted] = await db.insert(apiKeys).values(row).returning();
      return inserted!;
    },

    async countActive(db: DbOrTx, userId: string, at: Date): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(apiKeys)
        .where(and(eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt), sql`${apiKeys.expiresAt} > ${at}`));
      return row?.n ?? 0;
    },

    /** A user's keys that are not revoked (expired ones included, so their owner sees them), newest first. */
    async listForUser(db: DbOrTx, userId: string, limit: number, after?: { createdAt: Date; id: string }): Promise<ApiKeyRow[]> {
      const page = after
        ? or(lt(apiKeys.createdAt, after.createdAt), and(eq(apiKeys.createdAt, after.createdAt), lt(apiKeys.id, after.id)))
        : undefined;
      return db
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt), page))
        .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
        .limit(limit);
    },

    async findActiveById(db: DbOrTx, id: string): Promise<ApiKeyRow | undefined> {
      const [row] = await db
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
        .limit(1);
      return row;
    },

    /** Revokes once: undefined when it was revoked meanwhile. */
    async revoke(db: DbOrTx, id: string, by: string, at: Date): Promise<ApiKeyRow | undefined> {
      const [row] = await db
        .update(apiKeys)
        .set({ revokedAt: at, revokedBy: by })
        .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
        .returning();
      return row;
    },

    /** Every key with this prefix (practically one), with its user's role, clearance and status as of now. */
    async findCredentials(db: DbOrTx, prefix: string): Promise<ApiKeyCredential[]> {
      const rows = await db
        .select({
          id: apiKeys.id,
          keyHash: apiKeys.keyHash,
          scopes: apiKeys.scopes,
          expiresAt: apiKeys.expiresAt,
          revokedAt: apiKeys.revokedAt,
          lastUsedAt: apiKeys.lastUsedAt,
          userId: users.id,
          username: users.username,
          role: users.role,
          clearance: users.clearance,
          isActive: users.isActive,
        })
        .from(apiKeys)
        .innerJoin(users, eq(users.id, apiKeys.userId))
        .where(eq(apiKeys.prefix, prefix))
        .limit(4);
      return rows.map((row) => ({
        id: row.id,
        keyHash: row.keyHash,
        scopes: row.scopes,
        expiresAt: row.expiresAt,
        revokedAt: row.revokedAt,
        lastUsedAt: row.lastUsedAt,
        user: { id: row.userId, username: row.username, role: row.role, clearance: row.clearance, isActive: row.isActive },
      }));
    },

    /** Sets last_used_at unless it was set less than `since` ago: at most one write per key per interval. */
    async touch(db: DbOrTx, id: string, at: Date, since: Date): Promise<void> {
      await db
        .update(apiKeys)
        .set({ lastUsedAt: at })
        .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, since))));
    },
  };
}

export type ApiKeysRepository = ReturnType<typeof createApiKeysRepository>;

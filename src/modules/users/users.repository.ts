import { and, asc, eq, gt, ilike, inArray, or, sql, type SQL } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { users, type Role } from '../../db/schema/users.js';
import type { Label } from '../../lib/labels.js';

export type UserRow = typeof users.$inferSelect;

export interface NewUserRow {
  username: string;
  email: string;
  fullName: string | null;
  passwordHash: string;
  role: Role;
  /** Null or absent: the role's default clearance. */
  clearance?: Label | null;
}

export interface UserListFilter {
  role?: Role;
  isActive?: boolean;
  /** Case-insensitive substring of username, e-mail or full name. */
  search?: string;
  after?: { createdAt: Date; id: string };
  limit: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (char) => `\\${char}`);
}

export function createUsersRepository() {
  return {
    async findById(db: DbOrTx, id: string): Promise<UserRow | undefined> {
      const [row] = await db.select().from(users).where(eq(users.id, id)).limit(1);
      return row;
    },

    /** By username (case-insensitive) or, when the identifier contains `@`, by e-mail. */
    async findByLogin(db: DbOrTx, identifier: string): Promise<UserRow | undefined> {
      const condition = identifier.includes('@')
        ? eq(users.email, identifier.toLowerCase())
        : sql`lower(${users.username}) = ${identifier.toLowerCase()}`;
      const [row] = await db.select().from(users).where(condition).limit(1);
      return row;
    },

    async findByUsername(db: DbOrTx, username: string): Promise<UserRow | undefined> {
      const [row] = await db
        .select()
        .from(users)
        .where(sql`lower(${users.username}) = ${username.toLowerCase()}`)
        .limit(1);
      return row;
    },

    /** Undefined when the username or e-mail is taken (the unique indexes decide, so concurrent inserts are safe). */
    async insert(db: DbOrTx, row: NewUserRow): Promise<UserRow | undefined> {
      const [inserted] = await db.insert(users).values(row).onConflictDoNothing().returning();
      return inserted;
    },

    async update(
      db: DbOrTx,
      id: string,
      patch: Partial<Pick<UserRow, 'email' | 'fullName' | 'passwordHash' | 'role' | 'isActive' | 'clearance'>>,
    ): Promise<UserRow | undefined> {
      const [row] = await db
        .update(users)
        .set({ ...patch, updatedAt: sql`now()` })
        .where(eq(users.id, id))
        .returning();
      return row;
    },

    /**
     * Locks the rows of every active administrator until the transaction ends and returns their ids (in id order, so
     * concurrent callers lock in the same order). Changes that take an administrator away serialise on this, so each
     * sees the others' outcome.
     */
    async lockActiveAdmins(db: DbOrTx): Promise<string[]> {
      const rows = await db
        .select({ id: users.id })
        .from(users)
        .where(and(eq(users.role, 'ADMIN'), eq(users.isActive, true)))
        .orderBy(asc(users.id))
        .for('update');
      return rows.map((row) => row.id);
    },

    async emailTakenByOther(db: DbOrTx, email: string, userId: string): Promise<boolean> {
      const [row] = await db
        .select({ id: users.id })
        .from(users)
        .where(and(eq(users.email, email.toLowerCase()), sql`${users.id} <> ${userId}`))
        .limit(1);
      return row !== undefined;
    },

    async setPasswordHash(db: DbOrTx, id: string, passwordHash: string): Promise<void> {
      await db.update(users).set({ passwordHash }).where(eq(users.id, id));
    },

    /** Oldest first, keyset-paginated on (created_at, id). Fetches `limit + 1` so the caller knows if more exist. */
    async list(db: DbOrTx, filter: UserListFilter): Promise<UserRow[]> {
      const conditions: SQL[] = [];
      if (filter.role) conditions.push(eq(users.role, filter.role));
      if (filter.isActive !== undefined) conditions.push(eq(users.isActive, filter.isActive));
      if (filter.search) {
        const pattern = `%${escapeLike(filter.search)}%`;
        conditions.push(or(ilike(users.username, pattern), ilike(users.email, pattern), ilike(users.fullName, pattern))!);
      }
      if (filter.after) {
        const { createdAt, id } = filter.after;
        conditions.push(or(gt(users.createdAt, createdAt), and(eq(users.createdAt, createdAt), gt(users.id, id)))!);
      }
      return db
        .select()
        .from(users)
        .where(conditions.length > 0 ? and(...conditions) : undefined)
        .orderBy(asc(users.createdAt), asc(users.id))
        .limit(filter.limit + 1);
    },

    /** Username and full name of each of these users that exists (ids that are not UUIDs are skipped). */
    async namesByIds(db: DbOrTx, ids: readonly string[]): Promise<{ id: string; username: string; fullName: string | null }[]> {
      const valid = [...new Set(ids.filter((value) => UUID.test(value)))];
      if (valid.length === 0) return [];
      return db.select({ id: users.id, username: users.username, fullName: users.fullName }).from(users).where(inArray(users.id, valid));
    },

    async activeIdsByRole(db: DbOrTx, roles: readonly Role[] | undefined): Promise<string[]> {
      const rows = await db
        .select({ id: users.id })
        .from(users)
        .where(roles && roles.length > 0 ? and(eq(users.isActive, true), inArray(users.role, [...roles])) : eq(users.isActive, true));
      return rows.map((row) => row.id);
    },
  };
}

export type UsersRepository = ReturnType<typeof createUsersRepository>;

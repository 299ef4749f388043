import { and, eq, isNull, lt, ne, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { refreshTokens, sessions, streamTickets, users } from '../../db/schema/users.js';
import type { UserRow } from '../users/users.repository.js';

export type SessionRow = typeof sessions.$inferSelect;

export interface SessionWithUser {
  session: SessionRow;
  user: UserRow;
}

export type ClaimResult =
  | { outcome: 'claimed'; sessionId: string }
  | { outcome: 'reused'; sessionId: string }
  | { outcome: 'expired' | 'unknown' };

export interface OpenSessionInput {
  sessionId: string;
  userId: string;
  expiresAt: Date;
  ipAddress: string | null;
  userAgent: string | null;
  refreshTokenHash: string;
  refreshExpiresAt: Date;
  loggedInAt: Date;
  /** RFC 8176 methods of this login, e.g. ['pwd'] or ['pwd', 'otp']. */
  amr: readonly string[];
  /** Set when the login itself passed a second factor. */
  mfaVerifiedAt: Date | null;
}

export function createSessionsRepository() {
  return {
    /** Stores a stream ticket; tickets that expired a while ago are cleared on the way (an indexed range delete). */
    async insertStreamTicket(db: DbOrTx, ticket: { ticketHash: string; sessionId: string; userId: string; expiresAt: Date }, now: Date): Promise<void> {
      await db.delete(streamTickets).where(lt(streamTickets.expiresAt, now));
      await db.insert(streamTickets).values(ticket);
    },

    /** Redeems a stream ticket: deleted whether or not it is still valid, returned only when it was. */
    async takeStreamTicket(db: DbOrTx, ticketHash: string, now: Date): Promise<{ sessionId: string; userId: string } | undefined> {
      const [row] = await db
        .delete(streamTickets)
        .where(eq(streamTickets.ticketHash, ticketHash))
        .returning({ sessionId: streamTickets.sessionId, userId: streamTickets.userId, expiresAt: streamTickets.expiresAt });
      return row && row.expiresAt > now ? { sessionId: row.sessionId, userId: row.userId } : undefined;
    },

    /**
     * A login's writes in one statement (one round trip while the audit chain is locked): the session, its first
     * refresh token, and the user's last_login_at. Foreign keys are checked at the end of the statement.
     */
    async open(db: DbOrTx, input: OpenSessionInput): Promise<void> {
      await db.execute(sql`
        with new_session as (
          insert into ${sessions} (id, user_id, expires_at, ip_address, user_agent, created_at, amr, mfa_verified_at)
          values (${input.sessionId}, ${input.userId}, ${input.expiresAt}, ${input.ipAddress}, ${input.userAgent}, ${input.loggedInAt},
                  ${`{${input.amr.join(',')}}`}::text[], ${input.mfaVerifiedAt})
        ), new_token as (
          insert into ${refreshTokens} (session_id, token_hash, expires_at)
          values (${input.sessionId}, ${input.refreshTokenHash}, ${input.refreshExpiresAt})
        )
        update ${users} set last_login_at = ${input.loggedInAt} where id = ${input.userId}`);
    },

    /** A second factor was just verified in this session (step-up, or enrolment): remembered with its method. */
    async markMfaVerified(db: DbOrTx, sessionId: string, at: Date): Promise<void> {
      await db
        .update(sessions)
        .set({
          mfaVerifiedAt: at,
          amr: sql`case when 'otp' = any(${sessions.amr}) then ${sessions.amr} else array_append(${sessions.amr}, 'otp') end`,
        })
        .where(eq(sessions.id, sessionId));
    },

    async findWithUser(db: DbOrTx, sessionId: string): Promise<SessionWithUser | undefined> {
      const [row] = await db
        .select({ session: sessions, user: users })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .where(eq(sessions.id, sessionId))
        .limit(1);
      return row;
    },

    async insertRefreshToken(db: DbOrTx, input: { sessionId: string; tokenHash: string; expiresAt: Date }): Promise<void> {
      await db.insert(refreshTokens).values(input);
    },

    /**
     * Marks a refresh token used, atomically: of two concurrent claims of the same token, the row lock lets exactly
     * one see `used_at IS NULL`. A token that exists but was already used is reported as reuse.
     */
    async claimRefreshToken(db: DbOrTx, tokenHash: string, now: Date): Promise<ClaimResult> {
      const [claimed] = await db
        .update(refreshTokens)
        .set({ usedAt: now })
        .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.usedAt), sql`${refreshTokens.expiresAt} > ${now}`))
        .returning({ sessionId: refreshTokens.sessionId });
      if (claimed) return { outcome: 'claimed', sessionId: claimed.sessionId };
      const [existing] = await db
        .select({ sessionId: refreshTokens.sessionId, usedAt: refreshTokens.usedAt })
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, tokenHash))
        .limit(1);
      if (!existing) return { outcome: 'unknown' };
      return existing.usedAt ? { outcome: 'reused', sessionId: existing.sessionId } : { outcome: 'expired' };
    },

    /** Revokes one live session; false when it was already revoked. */
    async revoke(db: DbOrTx, sessionId: string, reason: string, now: Date): Promise<boolean> {
      const rows = await db
        .update(sessions)
        .set({ revokedAt: now, revokedReason: reason })
        .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
        .returning({ id: sessions.id });
      return rows.length > 0;
    },

    /** Revokes every live session of a user (except one, when given); returns the ids revoked. */
    async revokeAllOfUser(db: DbOrTx, userId: string, reason: string, now: Date, exceptSessionId?: string): Promise<string[]> {
      const conditions = [eq(sessions.userId, userId), isNull(sessions.revokedAt)];
      if (exceptSessionId) conditions.push(ne(sessions.id, exceptSessionId));
      const rows = await db
        .update(sessions)
        .set({ revokedAt: now, revokedReason: reason })
        .where(and(...conditions))
        .returning({ id: sessions.id });
      return rows.map((row) => row.id);
    },

    async touch(db: DbOrTx, sessionId: string, now: Date): Promise<void> {
      await db.update(sessions).set({ lastUsedAt: now }).where(eq(sessions.id, sessionId));
    },
  };
}

export type SessionsRepository = ReturnType<typeof createSessionsRepository>;

import { and, asc, count, desc, eq, gt, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import { queryRows, type DbOrTx } from '../../db/client.js';
import { notificationPreferences, notifications } from '../../db/schema/notifications.js';
import type { Role } from '../auth/permissions.js';
import type { DeliveryMethod, Notification, NotificationPriority, NotificationType } from './notifications.types.js';

/** Who receives a fan-out: explicit users (active or not), or the active users holding one of the roles. */
export type Recipients = { userIds: string[] } | { roles: readonly Role[] };

export interface NotificationTemplate {
  type: NotificationType;
  title: string;
  message: string;
  data: Record<string, unknown>;
  priority: NotificationPriority;
  expiresAt: Date | null;
  createdAt: Date;
}

export interface InsertedNotification {
  id: string;
  userId: string;
}

/** One fan-out as stored: its recipients' rows, which share one seq (null when nobody was left to receive it). */
export interface InsertedFanout {
  seq: number | null;
  rows: InsertedNotification[];
}

/** A stored recipient row in full: the template plus what the insert gave it (what a select would read back). */
export function storedNotification(template: NotificationTemplate, row: InsertedNotification, seq: number): Notification {
  return {
    id: row.id,
    userId: row.userId,
    seq,
    type: template.type,
    title: template.title,
    message: template.message,
    data: template.data,
    priority: template.priority,
    isRead: false,
    readAt: null,
    expiresAt: template.expiresAt,
    createdAt: template.createdAt,
    emailedAt: null,
  };
}

export interface StoredPreference {
  notificationType: string;
  enabled: boolean;
  deliveryMethod: DeliveryMethod;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A uuid's text form: 32 hex digits and 4 hyphens. */
const UUID_LENGTH = 36;

function notExpired(now: Date): SQL {
  return or(isNull(notifications.expiresAt), gt(notifications.expiresAt, now))!;
}

function recipientFilter(recipients: Recipients): SQL {
  if ('userIds' in recipients) {
    // Ids come from other services; anything that is not a UUID would abort the caller's transaction on the cast.
    const ids = recipients.userIds.filter((value) => UUID.test(value));
    return sql`u.id = ANY(string_to_array(${ids.join(',')}::text, ',')::uuid[])`;
  }
  return sql`u.is_active AND u.role = ANY(string_to_array(${recipients.roles.join(',')}::text, ','))`;
}

export function createNotificationRepository() {
  return {
    /**
     * Persists one notification per recipient in a single statement: recipients whose preferences switch the type
     * off are skipped (never for SECURITY_ALERT), the global counter is bumped once (only when someone is left to
     * receive it) and every row gets that seq.
     */
    async insertForRecipients(db: DbOrTx, recipients: Recipients, template: NotificationTemplate): Promise<InsertedFanout> {
      // Ids: one strongly random secret per fan-out, and per recipient the SHA-256 of it with the recipient's index,
      // shaped as a version-4 uuid: as unguessable as gen_random_uuid() without a call out of the database engine for
      // random bytes on every row (a sixth of an embedded fan-out's cost).
      // The rows come back as one value: the seq, and every (user id, notification id) pair as 72 characters of one
      // string. Five thousand result rows cost more to encode, decode and parse than the insert saved elsewhere.
      const [result] = await queryRows<{ seq: number | string | null; pairs: string | null }>(
        db,
        sql`
          WITH recipients AS (
            SELECT u.id AS user_id, row_number() OVER () AS n FROM users u
            WHERE ${recipientFilter(recipients)}
              AND (${template.type}::text = 'SECURITY_ALERT' OR NOT EXISTS (
                SELECT 1 FROM notification_preferences p
                WHERE p.user_id = u.id AND p.notification_type = ${template.type}::text
                  AND (NOT p.enabled OR p.delivery_method = 'none')))
          ),
          allocated AS (
            UPDATE notification_sequence SET last_seq = last_seq + 1
            WHERE id = 1 AND EXISTS (SELECT 1 FROM recipients)
            RETURNING last_seq, gen_random_uuid()::text AS secret
          ),
          inserted AS (
            INSERT INTO notifications (id, user_id, seq, type, title, message, data, priority, expires_at, created_at)
            SELECT overlay(overlay(encode(substr(sha256(convert_to(a.secret || ':' || r.n, 'UTF8')), 1, 16), 'hex')
                     placing '4' from 13 for 1) placing '8' from 17 for 1)::uuid,
                   r.user_id, a.last_seq, ${template.type}::text, ${template.title}::text, ${template.message}::text,
                   ${JSON.stringify(template.data)}::jsonb, ${template.priority}::text,
                   ${template.expiresAt ? template.expiresAt.toISOString() : null}::timestamptz,
                   ${template.createdAt.toISOString()}::timestamptz
            FROM recipients r CROSS JOIN allocated a
            RETURNING id, user_id
          )
          SELECT (SELECT last_seq FROM allocated) AS seq, string_agg(user_id::text || id::text, '') AS pairs FROM inserted`,
      );
      if (!result || result.seq === null || result.pairs === null) return { seq: null, rows: [] };
      const rows: InsertedNotification[] = [];
      for (let at = 0; at < result.pairs.length; at += 2 * UUID_LENGTH) {
        rows.push({ userId: result.pairs.slice(at, at + UUID_LENGTH), id: result.pairs.slice(at + UUID_LENGTH, at + 2 * UUID_LENGTH) });
      }
      return { seq: Number(result.seq), rows };
    },

    /**
     * Of these users, those who asked for this type by e-mail as well. Read from the preferences (a few rows per
     * user), not from the fan-out's rows, so a broadcast to thousands costs one small query.
     */
    async emailRecipients(db: DbOrTx, type: NotificationType, userIds: readonly string[]): Promise<Set<string>> {
      if (userIds.length === 0) return new Set();
      const rows = await db
        .select({ userId: notificationPreferences.userId })
        .from(notificationPreferences)
        .where(
          and(
            eq(notificationPreferences.notificationType, type),
            eq(notificationPreferences.deliveryMethod, 'email'),
            eq(notificationPreferences.enabled, true),
            // A few recipients: only theirs. A broadcast: every e-mail preference of the type, filtered below.
            userIds.length <= 500 ? inArray(notificationPreferences.userId, [...userIds]) : undefined,
          ),
        );
      const wanted = new Set(userIds);
      return new Set(rows.map((row) => row.userId).filter((userId) => wanted.has(userId)));
    },

    /** One notification by id, whoever it belongs to (the e-mail job; never an HTTP read). */
    async findById(db: DbOrTx, id: string): Promise<Notification | undefined> {
      if (!UUID.test(id)) return undefined;
      const [row] = await db.select().from(notifications).where(eq(notifications.id, id)).limit(1);
      return row;
    },

    /** Records that the e-mail went out; false when another attempt recorded it first. */
    async markEmailed(db: DbOrTx, id: string, at: Date): Promise<boolean> {
      const rows = await db
        .update(notifications)
        .set({ emailedAt: at })
        .where(and(eq(notifications.id, id), isNull(notifications.emailedAt)))
        .returning({ id: notifications.id });
      return rows.length > 0;
    },

    /** The last seq handed out, by any instance. */
    async currentSeq(db: DbOrTx): Promise<number> {
      const rows = await queryRows<{ last_seq: number | string }>(db, sql`SELECT last_seq FROM notification_sequence WHERE id = 1`);
      return Number(rows[0]?.last_seq ?? 0);
    },

    /** Notifications after a seq, oldest first (expired ones included: the stream skips them but moves past). */
    async listAfter(db: DbOrTx, userId: string, afterSeq: number, limit: number): Promise<Notification[]> {
      return db
        .select()
        .from(notifications)
        .where(and(eq(notifications.userId, userId), gt(notifications.seq, afterSeq)))
        .orderBy(asc(notifications.seq))
        .limit(limit);
    },

    /** Newest first; `beforeSeq` continues a page. */
    async list(
      db: DbOrTx,
      userId: string,
      options: { unreadOnly: boolean; beforeSeq?: number; limit: number; now: Date },
    ): Promise<Notification[]> {
      return db
        .select()
        .from(notifications)
        .where(
          and(
            eq(notifications.userId, userId),
            notExpired(options.now),
            options.unreadOnly ? eq(notifications.isRead, false) : undefined,
            options.beforeSeq !== undefined ? lt(notifications.seq, options.beforeSeq) : undefined,
          ),
        )
        .orderBy(desc(notifications.seq))
        .limit(options.limit);
    },

    async find(db: DbOrTx, userId: string, id: string, now: Date): Promise<Notification | undefined> {
      const rows = await db
        .select()
        .from(notifications)
        .where(and(eq(notifications.id, id), eq(notifications.userId, userId), notExpired(now)));
      return rows[0];
    },

    /** Marks one read (the first read time is kept); undefined when it is not this user's live notification. */
    async markRead(db: DbOrTx, userId: string, id: string, now: Date): Promise<Notification | undefined> {
      const rows = await db
        .update(notifications)
        .set({ isRead: true, readAt: sql`coalesce(${notifications.readAt}, ${now.toISOString()}::timestamptz)` })
        .where(and(eq(notifications.id, id), eq(notifications.userId, userId), notExpired(now)))
        .returning();
      return rows[0];
    },

    async markAllRead(db: DbOrTx, userId: string, now: Date): Promise<number> {
      const rows = await db
        .update(notifications)
        .set({ isRead: true, readAt: now })
        .where(and(eq(notifications.userId, userId), eq(notifications.isRead, false), notExpired(now)))
        .returning({ id: notifications.id });
      return rows.length;
    },

    async remove(db: DbOrTx, userId: string, id: string, now: Date): Promise<boolean> {
      const rows = await db
        .delete(notifications)
        .where(and(eq(notifications.id, id), eq(notifications.userId, userId), notExpired(now)))
        .returning({ id: notifications.id });
      return rows.length > 0;
    },

    async unreadCount(db: DbOrTx, userId: string, now: Date): Promise<number> {
      const rows = await db
        .select({ value: count() })
        .from(notifications)
        .where(and(eq(notifications.userId, userId), eq(notifications.isRead, false), notExpired(now)));
      return Number(rows[0]?.value ?? 0);
    },

    async preferences(db: DbOrTx, userId: string): Promise<StoredPreference[]> {
      return db
        .select({
          notificationType: notificationPreferences.notificationType,
          enabled: notificationPreferences.enabled,
          deliveryMethod: notificationPreferences.deliveryMethod,
        })
        .from(notificationPreferences)
        .where(eq(notificationPreferences.userId, userId));
    },

    async upsertPreferences(db: DbOrTx, userId: string, preferences: StoredPreference[], now: Date): Promise<void> {
      if (preferences.length === 0) return;
      await db
        .insert(notificationPreferences)
        .values(preferences.map((preference) => ({ userId, ...preference, updatedAt: now })))
        .onConflictDoUpdate({
          target: [notificationPreferences.userId, notificationPreferences.notificationType],
          set: {
            enabled: sql`excluded.enabled`,
            deliveryMethod: sql`excluded.delivery_method`,
            updatedAt: sql`excluded.updated_at`,
          },
        });
    },

    /** Deletes up to `limit` expired notifications; returns how many went. */
    async deleteExpired(db: DbOrTx, now: Date, limit: number): Promise<number> {
      const rows = await queryRows<{ id: string }>(
        db,
        sql`DELETE FROM notifications WHERE id IN (
              SELECT id FROM notifications WHERE expires_at IS NOT NULL AND expires_at <= ${now.toISOString()}::timestamptz
              LIMIT ${limit})
            RETURNING id`,
      );
      return rows.length;
    },
  };
}

export type NotificationRepository = ReturnType<typeof createNotificationRepository>;

import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, jsonb, pgTable, primaryKey, smallint, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

export const NOTIFICATION_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type NotificationPriority = (typeof NOTIFICATION_PRIORITIES)[number];

/** `in_app`: inbox and stream; `email`: the same, and an e-mail too (SMTP_URL); `none`: not received. */
export const DELIVERY_METHODS = ['in_app', 'email', 'none'] as const;
export type DeliveryMethod = (typeof DELIVERY_METHODS)[number];

/**
 * A user's inbox. `seq` comes from notification_sequence: the recipients of one fan-out share it, and it increases
 * strictly per user, so `Last-Event-ID: <seq>` tells a reconnecting stream exactly what it has already seen.
 */
export const notifications = pgTable(
  'notifications',
  {
    id: id(),
    // No foreign key: a fan-out inserts one row per recipient, and checking (and share-locking) the users row of
    // every one of 5,000 recipients was a quarter of a broadcast's cost. Rows are only ever inserted for user ids
    // selected from users in the same statement, and a trigger on users (src/db/sql) deletes a deleted user's rows.
    userId: uuid('user_id').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    type: text('type').notNull(),
    title: text('title').notNull(),
    message: text('message').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull().default({}),
    priority: text('priority').$type<NotificationPriority>().notNull().default('normal'),
    isRead: boolean('is_read').notNull().default(false),
    readAt: timestampMs('read_at'),
    expiresAt: timestampMs('expires_at'),
    createdAt: createdAt(),
    /** When its e-mail was handed to the SMTP server (recipients who asked for e-mail only), so a retry does not resend. */
    emailedAt: timestampMs('emailed_at'),
  },
  (table) => [
    // Also serves unread counts: a user's rows are few (expired ones are purged), and one more index to maintain
    // on every fan-out row cost more than it saved.
    uniqueIndex('notifications_user_seq_idx').on(table.userId, table.seq),
    index('notifications_expires_idx').on(table.expiresAt).where(sql`${table.expiresAt} is not null`),
    check('notifications_priority_check', sql`${table.priority} in ('low', 'normal', 'high', 'urgent')`),
  ],
);

/**
 * The last seq handed out, one row for every user and instance. A fan-out bumps it once, with `UPDATE … RETURNING`,
 * which holds the row's lock until commit: fan-outs commit in seq order, so a reader that sees seq n has already been
 * able to see every seq < n, and every instance can hand fan-outs to its streams in that order (see the hub).
 * A transaction that notifies takes this lock before the audit chain's head (services notify, then audit), so the two
 * global locks are always taken in the same order.
 */
export const notificationSequence = pgTable(
  'notification_sequence',
  {
    id: smallint('id').primaryKey(),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
  },
  (table) => [check('notification_sequence_single_row', sql`${table.id} = 1`)],
);

/** Only deviations from the default (enabled, in_app) are stored. */
export const notificationPreferences = pgTable(
  'notification_preferences',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    notificationType: text('notification_type').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    deliveryMethod: text('delivery_method').$type<DeliveryMethod>().notNull().default('in_app'),
    updatedAt: updatedAt(),
  },
  (table) => [
    primaryKey({ columns: [table.userId, table.notificationType] }),
    check('notification_preferences_delivery_check', sql`${table.deliveryMethod} in ('in_app', 'email', 'none')`),
  ],
);

import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, jsonb, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

export const NOTIFICATION_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type NotificationPriority = (typeof NOTIFICATION_PRIORITIES)[number];

export const DELIVERY_METHODS = ['in_app', 'none'] as const;
export type DeliveryMethod = (typeof DELIVERY_METHODS)[number];

/**
 * A user's inbox. `seq` increases strictly per user (allocated from notification_counters under a row lock), so
 * `Last-Event-ID: <seq>` tells a reconnecting stream exactly what it has already seen.
 */
export const notifications = pgTable(
  'notifications',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
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
  },
  (table) => [
    uniqueIndex('notifications_user_seq_idx').on(table.userId, table.seq),
    index('notifications_unread_idx').on(table.userId).where(sql`${table.isRead} = false`),
    index('notifications_expires_idx').on(table.expiresAt).where(sql`${table.expiresAt} is not null`),
    check('notifications_priority_check', sql`${table.priority} in ('low', 'normal', 'high', 'urgent')`),
  ],
);

/**
 * The last seq handed out per user. Allocating with `UPDATE … RETURNING` holds this row's lock until commit, so one
 * user's notifications commit in seq order: a reader that sees seq n has already been able to see every seq < n.
 */
export const notificationCounters = pgTable('notification_counters', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
});

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
    check('notification_preferences_delivery_check', sql`${table.deliveryMethod} in ('in_app', 'none')`),
  ],
);

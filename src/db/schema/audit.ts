import { bigint, index, jsonb, pgTable, smallint, text, uuid } from 'drizzle-orm/pg-core';
import { id, timestampMs } from './columns.js';

/**
 * Append-only (a trigger in src/db/sql rejects UPDATE, DELETE and TRUNCATE). No foreign keys: the trail must
 * outlive whatever it describes.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: id(),
    seq: bigint('seq', { mode: 'number' }).notNull().unique(),
    eventType: text('event_type').notNull(),
    userId: uuid('user_id'),
    sessionId: uuid('session_id'),
    resourceType: text('resource_type'),
    resourceId: text('resource_id'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    ipAddress: text('ip_address'),
    userAgent: text('user_agent'),
    createdAt: timestampMs('created_at').notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (table) => [
    index('audit_events_type_idx').on(table.eventType, table.seq),
    index('audit_events_user_idx').on(table.userId, table.seq),
    index('audit_events_created_idx').on(table.createdAt),
  ],
);

/** One row (id = 1): the chain head. Appenders lock it, so the chain stays gap-free under concurrency. */
export const auditChainHead = pgTable('audit_chain_head', {
  id: smallint('id').primaryKey(),
  seq: bigint('seq', { mode: 'number' }).notNull(),
  hash: text('hash').notNull(),
});

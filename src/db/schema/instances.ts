import { integer, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { timestampMs } from './columns.js';

/**
 * Running service instances, each renewing its lease (`heartbeat_at`) every few seconds. An instance whose lease ran
 * out is gone: the tool calls it was running are resolved as interrupted by any instance still alive.
 */
export const serviceInstances = pgTable('service_instances', {
  id: uuid('id').primaryKey(),
  hostname: text('hostname').notNull(),
  pid: integer('pid').notNull(),
  startedAt: timestampMs('started_at').notNull(),
  heartbeatAt: timestampMs('heartbeat_at').notNull(),
});

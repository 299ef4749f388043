import { sql } from 'drizzle-orm';
import { timestamp, uuid } from 'drizzle-orm/pg-core';

/** Millisecond precision, so a timestamp read back equals the one written (the audit hash depends on it). */
export const timestampMs = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });

export const id = () => uuid('id').primaryKey().default(sql`gen_random_uuid()`);
export const createdAt = () => timestampMs('created_at').notNull().defaultNow();
export const updatedAt = () => timestampMs('updated_at').notNull().defaultNow();

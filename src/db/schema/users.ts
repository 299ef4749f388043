import { sql } from 'drizzle-orm';
import { boolean, check, index, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import type { Label } from '../../lib/labels.js';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';

export const ROLES = ['ANALYST', 'MANAGER', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];

export const users = pgTable(
  'users',
  {
    id: id(),
    username: text('username').notNull(),
    /** Stored lower-cased so uniqueness and login by e-mail are case-insensitive. */
    email: text('email').notNull(),
    fullName: text('full_name'),
    passwordHash: text('password_hash').notNull(),
    role: text('role').$type<Role>().notNull().default('ANALYST'),
    isActive: boolean('is_active').notNull().default(true),
    /** Set by an administrator; null means the role's default (src/lib/labels.ts), so RESTRICTED is only explicit. */
    clearance: text('clearance').$type<Label>(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    lastLoginAt: timestampMs('last_login_at'),
  },
  (table) => [
    uniqueIndex('users_username_lower_idx').on(sql`lower(${table.username})`),
    uniqueIndex('users_email_idx').on(table.email),
    check('users_role_check', sql`${table.role} in ('ANALYST', 'MANAGER', 'ADMIN')`),
    check('users_clearance_check', sql`${table.clearance} in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')`),
  ],
);

export const sessions = pgTable(
  'sessions',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    /** Absolute end of the session, whatever the refreshes. */
    expiresAt: timestampMs('expires_at').notNull(),
    lastUsedAt: timestampMs('last_used_at'),
    revokedAt: timestampMs('revoked_at'),
    revokedReason: text('revoked_reason'),
    ipAddress: text('ip_address'),
    userAgent: text('user_agent'),
  },
  (table) => [index('sessions_user_idx').on(table.userId)],
);

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: id(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    /** SHA-256 of the opaque token; the token itself is never stored. */
    tokenHash: text('token_hash').notNull(),
    createdAt: createdAt(),
    expiresAt: timestampMs('expires_at').notNull(),
    usedAt: timestampMs('used_at'),
  },
  (table) => [uniqueIndex('refresh_tokens_hash_idx').on(table.tokenHash), index('refresh_tokens_session_idx').on(table.sessionId)],
);


/**
 * Single-use stream tickets (`POST /auth/stream-ticket`), by the SHA-256 of the ticket. Kept in the database rather
 * than Redis so that signing in to a stream keeps working while Redis is down; redeeming is one delete-returning.
 */
export const streamTickets = pgTable(
  'stream_tickets',
  {
    ticketHash: text('ticket_hash').primaryKey(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    userId: uuid('user_id').notNull(),
    expiresAt: timestampMs('expires_at').notNull(),
  },
  (table) => [index('stream_tickets_expires_idx').on(table.expiresAt)],
);

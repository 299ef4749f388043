import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
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
    /** A confirmed TOTP factor exists (user_totp.confirmed_at); kept here so every session check sees it for free. */
    mfaEnabled: boolean('mfa_enabled').notNull().default(false),
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
    /** Authentication methods of this login (RFC 8176 `amr` values, e.g. pwd, otp), carried into every access token. */
    amr: text('amr').array().notNull().default(sql`'{}'::text[]`),
    /** Last second-factor verification in this session (login or step-up); sensitive actions need it to be recent. */
    mfaVerifiedAt: timestampMs('mfa_verified_at'),
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

/** A user's TOTP factor (RFC 6238). Unconfirmed while enrolment is pending; at most one per user. */
export const userTotp = pgTable('user_totp', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  /** Field ciphertext (AES-256-GCM envelope) of the base32 secret, bound to `user_totp:<user id>:secret`. */
  secretCiphertext: text('secret_ciphertext').notNull(),
  createdAt: createdAt(),
  confirmedAt: timestampMs('confirmed_at'),
  /** The last time step a code was accepted for: a code is never accepted twice, nor an older one. */
  lastUsedStep: bigint('last_used_step', { mode: 'number' }),
});

/** One-time recovery codes: only SHA-256 hashes of 100-bit random codes are kept. */
export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    codeHash: text('code_hash').notNull(),
    createdAt: createdAt(),
    usedAt: timestampMs('used_at'),
  },
  (table) => [uniqueIndex('recovery_codes_user_hash_idx').on(table.userId, table.codeHash)],
);

/** An account at an OpenID provider linked to a user: found again by (issuer, subject), never by name or e-mail. */
export const userIdentities = pgTable(
  'user_identities',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    createdAt: createdAt(),
    lastLoginAt: timestampMs('last_login_at'),
  },
  (table) => [uniqueIndex('user_identities_issuer_subject_idx').on(table.issuer, table.subject), index('user_identities_user_idx').on(table.userId)],
);

import { sql } from 'drizzle-orm';
import { check, index, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs } from './columns.js';
import { users } from './users.js';

/** What a key may be used for (CONTRACT §8); a key never grants more than its user's role allows. */
export const API_KEY_SCOPES = ['chat', 'embeddings', 'documents:read', 'mcp'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export const apiKeys = pgTable(
  'api_keys',
  {
    id: id(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** The key's first characters (`cdsa_` and 8 more), shown in listings and used to find the row. */
    prefix: text('prefix').notNull(),
    /** SHA-256 (hex) of the whole key: the key has 256 random bits, so a fast hash is enough; the key is never stored. */
    keyHash: text('key_hash').notNull(),
    scopes: text('scopes').array().$type<ApiKeyScope[]>().notNull(),
    expiresAt: timestampMs('expires_at').notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestampMs('last_used_at'),
    revokedAt: timestampMs('revoked_at'),
    revokedBy: uuid('revoked_by'),
  },
  (table) => [
    index('api_keys_prefix_idx').on(table.prefix),
    index('api_keys_user_idx').on(table.userId, table.createdAt),
    check('api_keys_scopes_check', sql`cardinality(${table.scopes}) > 0`),
  ],
);

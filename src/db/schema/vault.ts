import { sql } from 'drizzle-orm';
import { index, integer, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, id, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

/**
 * Credentials that tools and LLM providers use. Values are only ever stored as field ciphertexts
 * (`v1.<keyId>....`) bound to `secrets:<id>:v<version>`; `encrypted_value` is the current version's ciphertext.
 */
export const secrets = pgTable(
  'secrets',
  {
    id: id(),
    name: text('name').notNull(),
    description: text('description'),
    currentVersion: integer('current_version').notNull().default(1),
    encryptedValue: text('encrypted_value').notNull(),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    lastAccessedAt: timestampMs('last_accessed_at'),
    /** Soft delete: the row (and its versions) is purged once the retention period has passed. */
    deletedAt: timestampMs('deleted_at'),
  },
  (table) => [
    // A deleted secret frees its name at once; it only waits for the purge.
    uniqueIndex('secrets_name_live_idx').on(table.name).where(sql`${table.deletedAt} is null`),
    index('secrets_deleted_idx').on(table.deletedAt),
  ],
);

/** Every value a secret has had; older versions stay readable by admins until the secret is purged. */
export const secretVersions = pgTable(
  'secret_versions',
  {
    id: id(),
    secretId: uuid('secret_id')
      .notNull()
      .references(() => secrets.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    encryptedValue: text('encrypted_value').notNull(),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex('secret_versions_secret_version_idx').on(table.secretId, table.version)],
);

/**
 * Credentials the service itself uses (an LLM provider's API key set through the API), kept apart from users'
 * secrets: never listed or revealed through the vault's routes, readable only by the component named in `component`
 * (the name starts with it, e.g. `llm.openai.api_key`). Values are field ciphertexts bound to
 * `system_credentials:<id>:value`, rotated with every other encrypted column.
 */
export const systemCredentials = pgTable(
  'system_credentials',
  {
    id: id(),
    name: text('name').notNull(),
    component: text('component').notNull(),
    encryptedValue: text('encrypted_value').notNull(),
    version: integer('version').notNull().default(1),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    lastUsedAt: timestampMs('last_used_at'),
  },
  (table) => [uniqueIndex('system_credentials_name_idx').on(table.name)],
);

import { sql } from 'drizzle-orm';
import { bigint, boolean, check, date, doublePrecision, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { createdAt, timestampMs, updatedAt } from './columns.js';
import { users } from './users.js';

/** Redaction policy set through /llm/config; a missing field keeps the environment's value. */
export interface StoredRedactionPolicy {
  redact_types?: string[];
  label_types?: string[];
}

/**
 * Models an administrator registered, enabled, disabled or configured. Models a provider lists but nobody
 * registered are usable too (they are merged in at read time); a row here overrides what discovery says.
 */
export const llmModels = pgTable(
  'llm_models',
  {
    /** `provider/model`, e.g. `ollama/llama3.1:8b`. */
    id: text('id').primaryKey(),
    provider: text('provider').notNull(),
    name: text('name').notNull(),
    isLocal: boolean('is_local').notNull(),
    contextWindow: integer('context_window'),
    isEnabled: boolean('is_enabled').notNull().default(true),
    config: jsonb('config').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [check('llm_models_context_window_check', sql`${table.contextWindow} IS NULL OR ${table.contextWindow} > 0`)],
);

/** Provider name → the vault secret holding the API key an administrator set through the API. */
export type ProviderSecretRefs = Partial<Record<string, { secret_id: string; secret_name: string }>>;

/** The gateway's settings: one row (`id = 'default'`); an absent row or a null field means "use the environment". */
export const llmSettings = pgTable('llm_settings', {
  id: text('id').primaryKey(),
  defaultModel: text('default_model'),
  temperature: doublePrecision('temperature'),
  maxContextTokens: integer('max_context_tokens'),
  providerSecrets: jsonb('provider_secrets').$type<ProviderSecretRefs>().notNull().default({}),
  /** Overrides of REDACTION_TYPES / REDACTION_LABEL_TYPES made through /llm/config (null: the environment's). */
  redactionPolicy: jsonb('redaction_policy').$type<StoredRedactionPolicy>(),
  /** Which roles may use a model (`{"openai/gpt-4o": ["MANAGER", "ADMIN"]}`); a model not named is open to every role. */
  modelAccess: jsonb('model_access').$type<Record<string, string[]>>(),
  updatedBy: uuid('updated_by').references(() => users.id, { onDelete: 'set null' }),
  updatedAt: updatedAt(),
});

/** Tokens each user spent per UTC day, for the optional daily budget (LLM_DAILY_TOKEN_BUDGET). */
export const llmUsageDaily = pgTable(
  'llm_usage_daily',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    day: date('day', { mode: 'string' }).notNull(),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull().default(0),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull().default(0),
    requests: integer('requests').notNull().default(0),
    updatedAt: timestampMs('updated_at').notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.userId, table.day] })],
);

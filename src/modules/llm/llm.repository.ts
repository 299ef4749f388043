import { and, eq, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client.js';
import { llmModels, llmSettings, llmUsageDaily, type ProviderSecretRefs, type StoredRedactionPolicy } from '../../db/schema/llm.js';

export type LlmModelRow = typeof llmModels.$inferSelect;
export type LlmSettingsRow = typeof llmSettings.$inferSelect;

export const SETTINGS_ID = 'default';

export interface ModelWrite {
  id: string;
  provider: string;
  name: string;
  isLocal: boolean;
  contextWindow: number | null;
  isEnabled: boolean;
  config: Record<string, unknown>;
  now: Date;
}

export interface SettingsPatch {
  defaultModel?: string | null;
  temperature?: number | null;
  maxContextTokens?: number | null;
  providerSecrets?: ProviderSecretRefs;
  redactionPolicy?: StoredRedactionPolicy | null;
  modelAccess?: Record<string, string[]> | null;
  updatedBy: string | null;
  now: Date;
}

/** One model call's tokens, for `addUsageMany`. */
export interface UsageAddition {
  userId: string;
  day: string;
  inputTokens: number;
  outputTokens: number;
  now: Date;
}

export function createLlmRepository() {
  return {
    async listModels(db: DbOrTx): Promise<LlmModelRow[]> {
      return db.select().from(llmModels).orderBy(llmModels.id);
    },

    async findModel(db: DbOrTx, id: string, forUpdate = false): Promise<LlmModelRow | undefined> {
      const query = db.select().from(llmModels).where(eq(llmModels.id, id));
      const [row] = forUpdate ? await query.for('update') : await query;
      return row;
    },

    async insertModel(db: DbOrTx, row: ModelWrite): Promise<LlmModelRow | undefined> {
      const [inserted] = await db
        .insert(llmModels)
        .values({ ...row, createdAt: row.now, updatedAt: row.now })
        .onConflictDoNothing()
        .returning();
      return inserted;
    },

    async updateModel(db: DbOrTx, row: ModelWrite): Promise<LlmModelRow> {
      const { id, now, ...fields } = row;
      const [updated] = await db
        .update(llmModels)
        .set({ ...fields, updatedAt: now })
        .where(eq(llmModels.id, id))
        .returning();
      return updated!;
    },

    async getSettings(db: DbOrTx, forUpdate = false): Promise<LlmSettingsRow | undefined> {
      const query = db.select().from(llmSettings).where(eq(llmSettings.id, SETTINGS_ID));
      const [row] = forUpdate ? await query.for('update') : await query;
      return row;
    },

    /** Creates the settings row on first use; only the fields present in the patch change. */
    async saveSettings(db: DbOrTx, patch: SettingsPatch): Promise<LlmSettingsRow> {
      const { now, updatedBy, ...fields } = patch;
      const values = { ...fields, updatedBy, updatedAt: now };
      const [row] = await db
        .insert(llmSettings)
        .values({ id: SETTINGS_ID, ...values })
        .onConflictDoUpdate({ target: llmSettings.id, set: values })
        .returning();
      return row!;
    },

    /** Adds one model call's tokens to the user's total of that UTC day. */
    async addUsage(db: DbOrTx, userId: string, day: string, inputTokens: number, outputTokens: number, now: Date): Promise<void> {
      await db
        .insert(llmUsageDaily)
        .values({ userId, day, inputTokens, outputTokens, requests: 1, updatedAt: now })
        .onConflictDoUpdate({
          target: [llmUsageDaily.userId, llmUsageDaily.day],
          set: {
            inputTokens: sql`${llmUsageDaily.inputTokens} + ${inputTokens}`,
            outputTokens: sql`${llmUsageDaily.outputTokens} + ${outputTokens}`,
            requests: sql`${llmUsageDaily.requests} + 1`,
            updatedAt: now,
          },
        });
    },

    /**
     * `addUsage` for many model calls in one statement (concurrent turns). Calls of one user on one day are summed
     * first: one upsert cannot change the same row twice.
     */
    async addUsageMany(db: DbOrTx, calls: UsageAddition[]): Promise<void> {
      const totals = new Map<string, { user_id: string; day: string; input_tokens: number; output_tokens: number; requests: number; updated_at: string }>();
      for (const call of calls) {
        const key = `${call.userId}:${call.day}`;
        const at = call.now.toISOString();
        const total = totals.get(key);
        if (total) {
          total.input_tokens += call.inputTokens;
          total.output_tokens += call.outputTokens;
          total.requests += 1;
          if (at > total.updated_at) total.updated_at = at;
        } else {
          totals.set(key, { user_id: call.userId, day: call.day, input_tokens: call.inputTokens, output_tokens: call.outputTokens, requests: 1, updated_at: at });
        }
      }
      await db.execute(
        sql`INSERT INTO llm_usage_daily (user_id, day, input_tokens, output_tokens, requests, updated_at)
            SELECT r.user_id, r.day, r.input_tokens, r.output_tokens, r.requests, r.updated_at
            FROM jsonb_to_recordset(${JSON.stringify([...totals.values()])}::jsonb) AS r(
              user_id uuid, day date, input_tokens bigint, output_tokens bigint, requests int, updated_at timestamptz)
            ON CONFLICT (user_id, day) DO UPDATE SET
              input_tokens = llm_usage_daily.input_tokens + excluded.input_tokens,
              output_tokens = llm_usage_daily.output_tokens + excluded.output_tokens,
              requests = llm_usage_daily.requests + excluded.requests,
              updated_at = excluded.updated_at`,
      );
    },

    async usageOn(db: DbOrTx, userId: string, day: string): Promise<number> {
      const [row] = await db
        .select({ total: sql<number>`(${llmUsageDaily.inputTokens} + ${llmUsageDaily.outputTokens})::bigint` })
        .from(llmUsageDaily)
        .where(and(eq(llmUsageDaily.userId, userId), eq(llmUsageDaily.day, day)));
      return row ? Number(row.total) : 0;
    },
  };
}

export type LlmRepository = ReturnType<typeof createLlmRepository>;

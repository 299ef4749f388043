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
  updatedBy: string | null;
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

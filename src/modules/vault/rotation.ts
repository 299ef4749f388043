import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { DecryptionError, type FieldCipher } from '../../lib/crypto/envelope.js';
import type { EncryptedColumn, EncryptedColumnRow } from './field-cipher.js';

export const DEFAULT_ROTATION_BATCH_SIZE = 500;

export interface ColumnRotation {
  column: string;
  /** Values rewrapped to the active key by this run. */
  rotated: number;
  /** Values that could not be opened (altered, or under a key no longer configured); left as they were. */
  failed: number;
}

export interface RotateOptions {
  batchSize?: number;
  /** Stops between batches; every batch already committed stays rewrapped, and a new run continues from there. */
  signal?: AbortSignal;
  /** Called after each committed batch. */
  onBatch?: (progress: { column: string; rotated: number }) => void;
}

export interface RotationLogger {
  warn(obj: object, msg: string): void;
}

/** Every ciphertext under `keyId` starts with this; anything else still needs rewrapping. */
export function activeKeyPrefix(keyId: string): string {
  return `v1.${keyId}.`;
}

const ROW_ID = '__rotation_id';
const ROW_VALUE = '__rotation_value';

/**
 * Rewraps one column to the active key in batches, each batch one transaction: select rows not yet under the active
 * key (locked, so a concurrent writer waits), rewrap their data keys, write them back in one statement. Rows are
 * visited in id order (keyset), so a value that cannot be opened is counted and skipped rather than retried forever.
 * Re-running after an interruption picks up exactly the rows still under an old key.
 */
export async function rotateColumn(
  db: Db,
  cipher: FieldCipher,
  column: EncryptedColumn,
  options: RotateOptions = {},
  logger?: RotationLogger,
): Promise<ColumnRotation> {
  const batchSize = options.batchSize ?? DEFAULT_ROTATION_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError('batchSize must be a positive integer');
  const table = sql.identifier(column.table);
  const idColumn = sql.identifier(column.idColumn ?? 'id');
  const valueColumn = sql.identifier(column.column);
  const extraColumns = (column.aadColumns ?? []).map((name) => sql`, ${sql.identifier(name)} AS ${sql.identifier(name)}`);
  const prefix = activeKeyPrefix(cipher.activeKeyId);
  const result: ColumnRotation = { column: column.name, rotated: 0, failed: 0 };
  let after: string | undefined;

  for (;;) {
    options.signal?.throwIfAborted();
    const batch = await db.transaction(async (tx) => {
      const rows = await queryRows<Record<string, unknown>>(
        tx,
        sql`SELECT ${idColumn}::text AS ${sql.identifier(ROW_ID)}, ${valueColumn} AS ${sql.identifier(ROW_VALUE)}${sql.join(extraColumns, sql``)}
            FROM ${table}
            WHERE ${valueColumn} IS NOT NULL AND NOT starts_with(${valueColumn}, ${prefix})
            ${after === undefined ? sql`` : sql`AND ${idColumn} > ${after}`}
            ORDER BY ${idColumn}
            LIMIT ${batchSize}
            FOR UPDATE`,
      );
      const updates: { id: string; value: string }[] = [];
      let failed = 0;
      for (const row of rows) {
        const id = String(row[ROW_ID]);
        const current = String(row[ROW_VALUE]);
        const { [ROW_ID]: _id, [ROW_VALUE]: _value, ...extras } = row;
        const aadRow: EncryptedColumnRow = { ...extras, id };
        try {
          updates.push({ id, value: cipher.rewrap(current, column.aad(aadRow)) });
        } catch (error) {
          if (!(error instanceof DecryptionError)) throw error;
          failed += 1;
          logger?.warn({ column: column.name, row_id: id, code: error.code, key_id: error.keyId }, 'value could not be rewrapped; it stays under its old key');
        }
      }
      if (updates.length > 0) {
        const cases: SQL[] = updates.map((update) => sql`WHEN ${update.id} THEN ${update.value}`);
        const ids: SQL[] = updates.map((update) => sql`${update.id}`);
        await tx.execute(
          sql`UPDATE ${table} SET ${valueColumn} = CASE ${idColumn} ${sql.join(cases, sql` `)} END
              WHERE ${idColumn} IN (${sql.join(ids, sql`, `)})`,
        );
      }
      const last = rows[rows.length - 1];
      return { size: rows.length, rotated: updates.length, failed, lastId: last === undefined ? undefined : String(last[ROW_ID]) };
    });
    result.rotated += batch.rotated;
    result.failed += batch.failed;
    if (batch.rotated > 0) options.onBatch?.({ column: column.name, rotated: batch.rotated });
    if (batch.size < batchSize || batch.lastId === undefined) return result;
    after = batch.lastId;
  }
}

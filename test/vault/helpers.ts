import { sql } from 'drizzle-orm';
import { queryRows } from '../../src/db/client.js';
import type { TestApp } from '../helpers/app.js';

export async function versionRows(t: TestApp, secretId?: string): Promise<{ id: string; secret_id: string; version: number; encrypted_value: string }[]> {
  return queryRows(
    t.app.infra.database.db,
    secretId === undefined
      ? sql`SELECT id, secret_id, version, encrypted_value FROM secret_versions ORDER BY secret_id, version`
      : sql`SELECT id, secret_id, version, encrypted_value FROM secret_versions WHERE secret_id = ${secretId} ORDER BY version`,
  );
}

export async function secretRows(t: TestApp): Promise<{ id: string; name: string; current_version: number; encrypted_value: string; deleted_at: Date | null }[]> {
  return queryRows(t.app.infra.database.db, sql`SELECT id, name, current_version, encrypted_value, deleted_at FROM secrets ORDER BY name`);
}

/** Every table of the schema whose rows, as text, contain `needle` (a plaintext that must be stored nowhere). */
export async function tablesContaining(t: TestApp, needle: string): Promise<string[]> {
  const db = t.app.infra.database.db;
  const tables = await queryRows<{ table_name: string }>(
    db,
    sql`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
  );
  const found: string[] = [];
  for (const { table_name } of tables) {
    const [row] = await queryRows<{ hits: number }>(
      db,
      sql`SELECT count(*)::int AS hits FROM ${sql.identifier(table_name)} AS t WHERE t::text LIKE ${`%${needle}%`}`,
    );
    if (row && row.hits > 0) found.push(table_name);
  }
  return found;
}

/** The same ciphertext with one byte of its encrypted data flipped. */
export function flipOneByte(ciphertext: string): string {
  const parts = ciphertext.split('.');
  const body = Buffer.from(parts[4]!, 'base64url');
  body[0] = body[0]! ^ 0x01;
  parts[4] = body.toString('base64url');
  return parts.join('.');
}

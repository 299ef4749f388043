import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Database } from './client.js';

// src/db/migrate.ts and dist/db/migrate.js both sit two levels below the package root.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MIGRATIONS_DIR = path.join(packageRoot, 'src', 'db', 'migrations');
/** Idempotent SQL that Drizzle's schema language can't express (triggers, functions); applied after migrations. */
export const POST_MIGRATION_SQL_DIR = path.join(packageRoot, 'src', 'db', 'sql');

/** Any constant works; it only has to be the same for every instance of this service. */
const MIGRATION_LOCK_KEY = 424_242_001;

export interface MigrationResult {
  vectorSearch: 'available' | 'unavailable';
}

function postMigrationStatements(): string[] {
  if (!fs.existsSync(POST_MIGRATION_SQL_DIR)) return [];
  return fs
    .readdirSync(POST_MIGRATION_SQL_DIR)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => fs.readFileSync(path.join(POST_MIGRATION_SQL_DIR, file), 'utf8'));
}

/**
 * Applies the committed migrations, then the post-migration SQL, then enables pgvector where the server has it.
 * On PostgreSQL an advisory lock serialises instances that start together; PGlite has a single owner anyway.
 */
export async function runMigrations(database: Database): Promise<MigrationResult> {
  if (database.kind === 'embedded') {
    const pglite = database.pglite!;
    await pglite.exec('CREATE EXTENSION IF NOT EXISTS vector');
    await migratePglite(database.db as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_DIR });
    for (const statement of postMigrationStatements()) await pglite.exec(statement);
    return { vectorSearch: 'available' };
  }

  const pool = database.pool!;
  const lockClient = await pool.connect();
  try {
    await lockClient.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const available = await lockClient.query<{ ok: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS ok",
    );
    let vectorSearch: MigrationResult['vectorSearch'] = 'unavailable';
    if (available.rows[0]?.ok) {
      await lockClient.query('CREATE EXTENSION IF NOT EXISTS vector');
      vectorSearch = 'available';
    }
    await migratePg(database.db as unknown as NodePgDatabase, { migrationsFolder: MIGRATIONS_DIR });
    for (const statement of postMigrationStatements()) await lockClient.query(statement);
    return { vectorSearch };
  } finally {
    await lockClient.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    lockClient.release();
  }
}

import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** Runs one statement on a short-lived connection to `baseUrl` (CREATE/DROP DATABASE cannot run in a pool's transaction). */
async function administer(baseUrl: string, statement: string): Promise<void> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(statement);
  } finally {
    await admin.end();
  }
}

/**
 * A new, empty database on the server of `baseUrl` (named `<prefix>_<random>`); returns its URL. Tests and benchmarks
 * on PostgreSQL each work in one of their own and drop it at the end.
 */
export async function createPostgresDatabase(baseUrl: string, prefix = 'cdsa_t'): Promise<string> {
  const name = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await administer(baseUrl, `CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database made by `createPostgresDatabase`, closing any connection still open to it. */
export async function dropPostgresDatabase(baseUrl: string, databaseUrl: string): Promise<void> {
  await administer(baseUrl, `DROP DATABASE IF EXISTS ${new URL(databaseUrl).pathname.slice(1)} WITH (FORCE)`);
}

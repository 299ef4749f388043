import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { createPglitePreparedClient } from './pglite-prepared-client.js';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { ExtractTablesWithRelations, SQL } from 'drizzle-orm';
import pg from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import * as schema from './schema/index.js';

export type Schema = typeof schema;
/** The database both drivers give us: PGlite (embedded) and node-postgres share this surface. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** Repositories accept either the database or an open transaction, so a service can group writes. */
export type DbOrTx = Db | Tx;

export type DatabaseKind = 'embedded' | 'postgres';

export interface Database {
  db: Db;
  kind: DatabaseKind;
  /** Raw rows of a parameterised statement; for the few places Drizzle's builder can't express. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** node-postgres pool, when on a real server (advisory locks need a dedicated connection). */
  pool?: pg.Pool;
  pglite?: PGlite;
}

export interface OpenDatabaseOptions {
  databaseUrl?: string;
  /** Directory for the embedded database; undefined keeps it in memory (tests). */
  embeddedDir?: string;
  /**
   * A dump of an embedded database (PGlite `dumpDataDir`) to start from instead of an empty one. Creating an empty
   * embedded database runs initdb inside WebAssembly (seconds); loading a dump of a migrated one takes a fraction of
   * that, which is what the test suite, building dozens of in-memory databases, starts from.
   */
  embeddedTemplate?: Blob;
  connectTimeoutSeconds?: number;
  poolSize?: number;
  logger?: Pick<FastifyBaseLogger, 'warn' | 'info'>;
}

export class DatabaseUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

// Timestamps leave the database as ISO strings in UTC; keep node-postgres from shifting them to local time.
pg.types.setTypeParser(1114, (value: string) => new Date(`${value.replace(' ', 'T')}Z`));
// int8 (counts, sequences) fit comfortably in a JS number for our volumes.
pg.types.setTypeParser(20, (value: string) => Number(value));

async function openPostgres(options: OpenDatabaseOptions & { databaseUrl: string }): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Bound every statement so a stuck query cannot hold a request forever.
    statement_timeout: 30_000,
    application_name: 'cdsa',
  });
  // An idle client erroring (server restart) must not crash the process; the pool replaces it.
  pool.on('error', (error) => options.logger?.warn({ err: error.message }, 'database connection error'));
  // The pool listens for errors on idle clients only. A checked-out client (a transaction, the migration lock) whose
  // connection the server terminates emits 'error' with nobody listening, which would end the process; its pending
  // query fails on its own and the caller answers 503, and the broken client is discarded when released.
  pool.on('connect', (client) => {
    client.on('error', (error) => options.logger?.warn({ err: error.message }, 'database connection lost'));
  });

  const deadline = Date.now() + (options.connectTimeoutSeconds ?? 30) * 1000;
  let delay = 250;
  for (;;) {
    try {
      const client = await pool.connect();
      client.release();
      break;
    } catch (error) {
      if (Date.now() >= deadline) {
        await pool.end().catch(() => undefined);
        throw new DatabaseUnavailableError(
          `PostgreSQL at DATABASE_URL is unreachable: ${(error as Error).message}`,
        );
      }
      options.logger?.warn({ retry_in_ms: delay }, 'PostgreSQL not reachable yet, retrying');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }

  const db = drizzlePg({ client: pool, schema }) as unknown as Db;
  return {
    db,
    kind: 'postgres',
    pool,
    ping: async () => {
      await pool.query('select 1');
    },
    close: async () => {
      await pool.end();
    },
  };
}

async function openEmbedded(options: OpenDatabaseOptions): Promise<Database> {
  const dir = options.embeddedDir ? path.join(options.embeddedDir, 'pglite') : undefined;
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dir, { extensions: { vector }, ...(options.embeddedTemplate ? { loadDataDir: options.embeddedTemplate } : {}) });
  } catch (error) {
    throw new DatabaseUnavailableError(`cannot open the embedded database in ${dir ?? 'memory'}: ${(error as Error).message}`);
  }
  // A new WAL segment is otherwise written full of zeros first: 16 MB in 8 KB writes, which on the in-memory file
  // system regrows (and copies) the file at every step; a broadcast that crossed a segment took three times as long.
  // Zero-filling only reserves disk space early; it is not needed for durability.
  await pglite.exec('SET wal_init_zero = off');
  // Statements run as reusable prepared statements, one call into the database each (see pglite-prepared-client.ts).
  const db = drizzlePglite({ client: createPglitePreparedClient(pglite) as unknown as PGlite, schema }) as unknown as Db;
  return {
    db,
    kind: 'embedded',
    pglite,
    ping: async () => {
      await pglite.query('select 1');
    },
    close: async () => {
      if (!pglite.closed) await pglite.close();
    },
  };
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres({ ...options, databaseUrl: options.databaseUrl });
  return openEmbedded(options);
}

/** Rows of a raw, parameterised query (use the `sql` tag; never string concatenation). */
export async function queryRows<T>(db: DbOrTx, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

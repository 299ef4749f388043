import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';

/** Where the migrated embedded database for this run is kept (read by test/helpers/app.ts). */
export const PGLITE_TEMPLATE_ENV = 'CDSA_TEST_PGLITE_TEMPLATE';

/**
 * Once per test run on the embedded database: an empty in-memory database is created and migrated by the real
 * migrations, and its dump saved; each test app then starts from that dump instead of running initdb (seconds in
 * WebAssembly) and the migrations again. The PostgreSQL pass creates real databases and needs none of this.
 */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.DATABASE_URL) return undefined;
  const database = await openDatabase({});
  let dump: Blob;
  try {
    await runMigrations(database);
    dump = await database.pglite!.dumpDataDir('none');
  } finally {
    await database.close();
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cdsa-test-'));
  const file = path.join(dir, 'pglite-template.tar');
  await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  // Test workers are started after this and inherit the environment.
  process.env[PGLITE_TEMPLATE_ENV] = file;
  return async () => {
    delete process.env[PGLITE_TEMPLATE_ENV];
    await rm(dir, { recursive: true, force: true });
  };
}

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase, queryRows } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { generateKeyringEntry } from '../../src/lib/crypto/keyring.js';
import { loadSecrets } from '../../src/lib/secrets.js';
import { SYSTEM_CONTEXT } from '../../src/modules/auth/permissions.js';
import { startProcess } from '../helpers/process.js';
import { strongPassword } from '../helpers/users.js';

const OLD = generateKeyringEntry('cli-old');
const NEW = generateKeyringEntry('cli-new');

/** `cdsa vault rotate` against the embedded database in a DATA_DIR, as an operator runs it. */
describe('cdsa vault rotate', () => {
  let dataDir: string;
  const env = (keys: string): Record<string, string> => ({
    CDSA_ENV: 'development',
    DATA_DIR: dataDir,
    ENCRYPTION_KEYS: keys,
    LOG_LEVEL: 'silent',
    OLLAMA_BASE_URL: 'http://127.0.0.1:9',
  });

  /** The app on the DATA_DIR database; the database is opened and migrated first, outside the plugin start timeout. */
  async function open(keys: string): Promise<{ app: FastifyInstance; close: () => Promise<void> }> {
    const config = loadConfig(env(keys), '0.0.0-test');
    const database = await openDatabase({ embeddedDir: dataDir });
    await runMigrations(database);
    const app = await buildApp({ config, secrets: loadSecrets(config), database });
    await app.ready();
    return {
      app,
      close: async () => {
        await app.close();
        await database.close();
      },
    };
  }

  async function run(keys: string, args: string[]): Promise<{ code: number | null; output: string }> {
    const child = startProcess(['src/cli/index.ts', 'vault', 'rotate', ...args], env(keys));
    const code = await child.exited;
    return { code, output: child.output() };
  }

  const values = new Map<string, string>();

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-vault-cli-'));
    const { app, close } = await open(OLD);
    try {
      const user = await app.users.createUser(
        null,
        { username: 'vault_cli_admin', email: 'vault-cli@example.test', password: strongPassword(), fullName: null, role: 'ADMIN' },
        { origin: 'cli' },
      );
      const actor = { userId: user.id, username: user.username, role: user.role, sessionId: randomUUID() };
      for (const name of ['cli.one', 'cli.two', 'cli.three']) {
        const value = `${name}-${randomUUID()}`;
        await app.vault.create(actor, { name, value }, SYSTEM_CONTEXT);
        values.set(name, value);
      }
    } finally {
      await close();
    }
  });

  afterAll(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('rejects a bad batch size before touching anything', async () => {
    const result = await run(`${NEW},${OLD}`, ['--batch-size', '0']);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/batch-size/);
  });

  it('rewraps everything to the new key in batches; the old key can then be dropped', async () => {
    const result = await run(`${NEW},${OLD}`, ['--batch-size', '2']);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('rotated 3 value(s) to key cli-new');
    expect(result.output).toContain('secret_versions.encrypted_value: +2');
    expect(result.output).toContain('secret_versions.encrypted_value: +1');

    const { app, close } = await open(NEW);
    try {
      for (const [name, value] of values) expect(await app.vault.useSecret(name, { consumer: 'test' })).toBe(value);
      const [event] = await queryRows<{ user_id: string | null; details: Record<string, unknown> }>(
        app.infra.database.db,
        sql`SELECT user_id, details FROM audit_events WHERE event_type = 'VAULT_KEY_ROTATED'`,
      );
      expect(event).toMatchObject({ user_id: null, details: { rotated: 3, key_id: 'cli-new', initiated_by: 'cli' } });
    } finally {
      await close();
    }
  });
});

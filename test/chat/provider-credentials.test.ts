import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { generateKeyringEntry } from '../../src/lib/crypto/keyring.js';
import { secretAad } from '../../src/modules/vault/vault.service.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { chat, mockEnv } from './helpers.js';

const API = '/api/v1';
const ENV_KEY = 'sk-test-env-0123456789abcdef';
const STORED_KEY = 'sk-stored-system-credential-9876543210';
const LEGACY_KEY = 'sk-legacy-user-vault-key-1357924680';
const OLD = generateKeyringEntry('k-old');
const NEW = generateKeyringEntry('k-new');

let mock: MockLlm;
let t: TestApp;
let admin: TestUser;
let manager: TestUser;
let analyst: TestUser;

const env = (): Record<string, string> => mockEnv(mock.url, { OPENAI_API_KEY: ENV_KEY });

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model'] });
  t = await buildTestApp({ env: env(), secrets: { encryptionKeys: OLD } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  admin = await createUser(t, { role: 'ADMIN' });
  manager = await createUser(t, { role: 'MANAGER' });
  analyst = await createUser(t);
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

const request = (app: TestApp, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, user: TestUser, payload?: Record<string, unknown>) =>
  app.app.inject({ method, url: `${API}${url}`, headers: user.headers, ...(payload ? { payload } : {}) });

async function userVaultNames(app: TestApp): Promise<string[]> {
  const rows = await queryRows<{ name: string }>(app.app.infra.database.db, sql`SELECT name FROM secrets ORDER BY name`);
  return rows.map((row) => row.name);
}

async function keyUsedByChat(app: TestApp, user: TestUser): Promise<string> {
  mock.requests.length = 0;
  mock.script(textReply(['ok']));
  await chat(app, user.headers, { message: 'hi', model: 'openai/mock-model' });
  return String(mock.chatRequests()[0]!.headers.authorization);
}

describe('provider API keys are system credentials, apart from users’ secrets', () => {
  it('is neither listed nor revealable through the vault, and is still used by the LLM gateway', async () => {
    const stored = await request(t, 'PUT', '/llm/providers/openai/credentials', admin, { api_key: STORED_KEY });
    expect(stored.statusCode, stored.body).toBe(200);
    expect(stored.json().providers_with_stored_keys).toEqual(['openai']);
    expect(await keyUsedByChat(t, analyst)).toBe(`Bearer ${STORED_KEY}`);

    // Nobody sees it among the vault's secrets, whatever their role; there is no id a manager could reveal.
    for (const user of [analyst, manager, admin]) {
      const listed = await request(t, 'GET', '/vault/secrets?limit=200', user);
      expect(listed.statusCode).toBe(200);
      expect(JSON.stringify(listed.json().items)).not.toContain('llm.');
    }
    expect(await userVaultNames(t)).toEqual([]);
    const [credential] = await queryRows<{ id: string; name: string; encrypted_value: string }>(
      t.app.infra.database.db,
      sql`SELECT id, name, encrypted_value FROM system_credentials`,
    );
    expect(credential).toMatchObject({ name: 'llm.openai.api_key', encrypted_value: expect.stringMatching(/^v1\.k-old\./) });
    expect((await request(t, 'GET', `/vault/secrets/${credential!.id}`, manager)).statusCode).toBe(404);
    expect((await request(t, 'GET', `/vault/secrets/${credential!.id}/versions`, admin)).statusCode).toBe(404);
    // The vault refuses user secrets in the system credentials' namespace.
    expect((await request(t, 'POST', '/vault/secrets', admin, { name: 'llm.openai.api_key', value: 'sk-user-made-key-000000' })).statusCode).toBe(422);

    // A new key replaces it (same credential), audited without the value.
    const replaced = await request(t, 'PUT', '/llm/providers/openai/credentials', admin, { api_key: `${STORED_KEY}-v2` });
    expect(replaced.statusCode).toBe(200);
    expect(await keyUsedByChat(t, analyst)).toBe(`Bearer ${STORED_KEY}-v2`);
    const [leaks] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM audit_events WHERE details::text LIKE ${'%sk-stored-system%'}`);
    expect(leaks!.n).toBe(0);
    const changed = (await auditEvents(t, 'LLM_CONFIG_CHANGED')).filter((row) => row.resource_id === 'provider:openai');
    expect(changed.map((row) => row.details.action)).toEqual(['provider_key_stored', 'provider_key_replaced']);
  });

  it('is rotated with the rest by POST /vault/rotate', async () => {
    const during = await buildTestApp({ share: t, env: env(), secrets: { encryptionKeys: `${NEW},${OLD}` } });
    try {
      await during.app.listen({ port: 0, host: '127.0.0.1' });
      const rotated = await request(during, 'POST', '/vault/rotate', admin);
      expect(rotated.statusCode, rotated.body).toBe(200);
      const [credential] = await queryRows<{ encrypted_value: string }>(during.app.infra.database.db, sql`SELECT encrypted_value FROM system_credentials`);
      expect(credential!.encrypted_value).toMatch(/^v1\.k-new\./);
      const [event] = await auditEvents(during, 'VAULT_KEY_ROTATED');
      expect(event!.details.columns).toEqual(expect.arrayContaining([{ name: 'system_credentials.encrypted_value', rotated: 1, failed: 0 }]));
      // Only the new key is needed from now on.
      const after = await buildTestApp({ share: t, env: env(), secrets: { encryptionKeys: NEW } });
      try {
        await after.app.listen({ port: 0, host: '127.0.0.1' });
        expect(await keyUsedByChat(after, analyst)).toBe(`Bearer ${STORED_KEY}-v2`);
      } finally {
        await after.close();
      }
    } finally {
      await during.close();
    }
  });

  it('moves a key an earlier version stored in the user vault out of it at start-up', async () => {
    // What the earlier version left behind: an ordinary secret named llm.anthropic.api_key, referenced by the settings.
    const legacy = await buildTestApp({ env: env(), secrets: { encryptionKeys: OLD } });
    try {
      const db = legacy.app.infra.database.db;
      const legacyAdmin = await createUser(legacy, { role: 'ADMIN' });
      const id = randomUUID();
      const ciphertext = legacy.app.fieldCipher.encrypt(LEGACY_KEY, secretAad(id, 1));
      await db.execute(sql`INSERT INTO secrets (id, name, description, current_version, encrypted_value, created_by)
                           VALUES (${id}, 'llm.openai.api_key', 'API key of the openai LLM provider', 1, ${ciphertext}, ${legacyAdmin.user.id})`);
      await db.execute(sql`INSERT INTO secret_versions (secret_id, version, encrypted_value, created_by) VALUES (${id}, 1, ${ciphertext}, ${legacyAdmin.user.id})`);
      await db.execute(sql`INSERT INTO llm_settings (id, provider_secrets) VALUES ('default', ${JSON.stringify({ openai: { secret_id: id, secret_name: 'llm.openai.api_key' } })}::jsonb)`);

      // The next start (another instance on the same database) moves it.
      const restarted = await buildTestApp({ share: legacy, env: env(), secrets: { encryptionKeys: OLD } });
      try {
        await restarted.app.listen({ port: 0, host: '127.0.0.1' });
        expect(await userVaultNames(restarted)).toEqual([]);
        const [versions] = await queryRows<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM secret_versions WHERE secret_id = ${id}`);
        expect(versions!.n).toBe(0);
        const manager2 = await createUser(restarted, { role: 'MANAGER' });
        expect((await request(restarted, 'GET', `/vault/secrets/${id}`, manager2)).statusCode).toBe(404);
        const analyst2 = await createUser(restarted);
        expect(await keyUsedByChat(restarted, analyst2)).toBe(`Bearer ${LEGACY_KEY}`);
        const [moved] = (await auditEvents(restarted, 'VAULT_SECRET_DELETED')).filter((row) => row.resource_id === id);
        expect(moved!.details).toMatchObject({ secret_name: 'llm.openai.api_key', moved_to: 'system_credentials' });
      } finally {
        await restarted.close();
      }
    } finally {
      await legacy.close();
    }
  });
});

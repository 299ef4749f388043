import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { generateKeyringEntry } from '../../src/lib/crypto/keyring.js';
import { SYSTEM_CONTEXT } from '../../src/modules/auth/permissions.js';
import { KeyRotationIncompleteError, type EncryptedColumn } from '../../src/modules/vault/index.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { flipOneByte, secretRows, versionRows } from './helpers.js';

const API = '/api/v1/vault';
const OLD = generateKeyringEntry('k2025');
const NEW = generateKeyringEntry('k2026');

/** A table another module would own: its `body` column holds field ciphertexts bound to the row. */
const NOTES: EncryptedColumn = {
  name: 'vault_test_notes.body',
  table: 'vault_test_notes',
  column: 'body',
  aadColumns: ['author'],
  aad: (row) => `vault_test_notes:${row.id}:${String(row.author)}:body`,
};

async function underKey(t: TestApp, keyId: string): Promise<{ versions: number; secrets: number; notes: number; total: number }> {
  const prefix = `v1.${keyId}.`;
  const [row] = await queryRows<{ versions: number; secrets: number; notes: number; total: number }>(
    t.app.infra.database.db,
    sql`SELECT
          (SELECT count(*)::int FROM secret_versions WHERE starts_with(encrypted_value, ${prefix})) AS versions,
          (SELECT count(*)::int FROM secrets WHERE starts_with(encrypted_value, ${prefix})) AS secrets,
          (SELECT count(*)::int FROM vault_test_notes WHERE starts_with(body, ${prefix})) AS notes,
          (SELECT count(*)::int FROM secret_versions) + (SELECT count(*)::int FROM vault_test_notes WHERE body IS NOT NULL) AS total`,
  );
  return row!;
}

describe('key rotation', () => {
  let before: TestApp;
  let during: TestApp;
  let after: TestApp;
  let admin: TestUser;
  const values = new Map<string, string[]>();
  const notes = new Map<string, string>();
  let deletedId: string;

  beforeAll(async () => {
    before = await buildTestApp({ secrets: { encryptionKeys: OLD } });
    admin = await createUser(before, { role: 'ADMIN' });
    for (let index = 0; index < 6; index += 1) {
      const first = `value-${index}-${randomUUID()}`;
      const created = await before.app.inject({
        method: 'POST',
        url: `${API}/secrets`,
        headers: admin.headers,
        payload: { name: `rotation.secret-${index}`, value: first },
      });
      expect(created.statusCode, created.body).toBe(201);
      values.set(created.json().id, [first]);
    }
    // Two more versions of the first secret, and one secret deleted but not yet purged: both are rotated too.
    const [firstId, , , , , lastId] = [...values.keys()];
    for (const version of [2, 3]) {
      const next = `value-0-v${version}-${randomUUID()}`;
      const updated = await before.app.inject({ method: 'PUT', url: `${API}/secrets/${firstId}`, headers: admin.headers, payload: { value: next } });
      expect(updated.statusCode).toBe(200);
      values.get(firstId!)!.push(next);
    }
    deletedId = lastId!;
    expect((await before.app.inject({ method: 'DELETE', url: `${API}/secrets/${deletedId}`, headers: admin.headers })).statusCode).toBe(204);

    const db = before.app.infra.database.db;
    await db.execute(sql`CREATE TABLE vault_test_notes (id uuid PRIMARY KEY, author text NOT NULL, body text)`);
    for (let index = 0; index < 3; index += 1) {
      const id = randomUUID();
      const body = `note-${index}-${randomUUID()}`;
      notes.set(id, body);
      const ciphertext = before.app.fieldCipher.encrypt(body, NOTES.aad({ id, author: 'ana' }));
      await db.execute(sql`INSERT INTO vault_test_notes (id, author, body) VALUES (${id}, 'ana', ${ciphertext})`);
    }
    // A NULL value is not a ciphertext and is left alone.
    await db.execute(sql`INSERT INTO vault_test_notes (id, author, body) VALUES (${randomUUID()}, 'ana', NULL)`);

    // The operator puts the new key first, keeping the old one to decrypt, and restarts.
    during = await buildTestApp({ share: before, secrets: { encryptionKeys: `${NEW},${OLD}` } });
    during.app.fieldCipher.registerEncryptedColumn(NOTES);
  });

  afterAll(async () => {
    await after?.close();
    await during?.close();
    await before?.close();
  });

  it('starts with everything under the old key', async () => {
    expect(await underKey(during, 'k2025')).toEqual({ versions: 8, secrets: 6, notes: 3, total: 11 });
  });

  it('can be interrupted: finished batches stay rewrapped, the rest still decrypts, a new run continues', async () => {
    const controller = new AbortController();
    let batches = 0;
    await expect(
      during.app.vault.rotate(null, SYSTEM_CONTEXT, {
        batchSize: 3,
        signal: controller.signal,
        onBatch: () => {
          batches += 1;
          if (batches === 2) controller.abort();
        },
      }),
    ).rejects.toThrow();
    expect(batches).toBe(2);
    const progress = await underKey(during, 'k2026');
    expect(progress.versions).toBe(6);
    expect(progress.notes).toBe(0);
    // Half-rotated is a normal state: every value opens with the configured keys.
    for (const [id, history] of values) {
      if (id === deletedId) continue;
      const response = await during.app.inject({ method: 'GET', url: `${API}/secrets/${id}`, headers: admin.headers });
      expect(response.json().value).toBe(history[history.length - 1]);
    }
    // Nothing was audited as a completed rotation.
    expect(await auditEvents(during, 'VAULT_KEY_ROTATED')).toEqual([]);
  });

  it('POST /vault/rotate rewraps every remaining secret version and registered column, and audits it', async () => {
    const response = await during.app.inject({ method: 'POST', url: `${API}/rotate`, headers: admin.headers });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ rotated: 11 - 6, key_id: 'k2026' });
    expect(await underKey(during, 'k2026')).toEqual({ versions: 8, secrets: 6, notes: 3, total: 11 });

    // secrets.encrypted_value is still exactly the current version's ciphertext.
    const versions = await versionRows(during);
    for (const secret of await secretRows(during)) {
      const current = versions.find((row) => row.secret_id === secret.id && row.version === secret.current_version);
      expect(secret.encrypted_value).toBe(current!.encrypted_value);
    }

    const [event] = await auditEvents(during, 'VAULT_KEY_ROTATED');
    expect(event).toMatchObject({ user_id: admin.user.id, resource_id: 'k2026', details: { rotated: 5, key_id: 'k2026', failed: 0 } });
    // Other modules' registered columns are listed too (nothing of theirs to rewrap here).
    expect(event!.details.columns).toEqual(
      expect.arrayContaining([
        { name: 'secret_versions.encrypted_value', rotated: 2, failed: 0 },
        { name: 'vault_test_notes.body', rotated: 3, failed: 0 },
      ]),
    );

    const again = await during.app.inject({ method: 'POST', url: `${API}/rotate`, headers: admin.headers });
    expect(again.json()).toEqual({ rotated: 0, key_id: 'k2026' });
  });

  it('after the old key is removed, every secret, old version and encrypted field still decrypts', async () => {
    after = await buildTestApp({ share: during, secrets: { encryptionKeys: NEW } });
    for (const [id, history] of values) {
      if (id === deletedId) continue;
      const current = await after.app.inject({ method: 'GET', url: `${API}/secrets/${id}`, headers: admin.headers });
      expect(current.statusCode, current.body).toBe(200);
      expect(current.json().value).toBe(history[history.length - 1]);
      for (const [index, value] of history.entries()) {
        const version = await after.app.inject({ method: 'GET', url: `${API}/secrets/${id}/versions/${index + 1}`, headers: admin.headers });
        expect(version.json().value).toBe(value);
      }
    }
    expect(await after.app.vault.useSecret('rotation.secret-1', { consumer: 'test' })).toBe(values.get([...values.keys()][1]!)![0]);
    const rows = await queryRows<{ id: string; author: string; body: string }>(after.app.infra.database.db, sql`SELECT id, author, body FROM vault_test_notes WHERE body IS NOT NULL`);
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(after.app.fieldCipher.decrypt(row.body, NOTES.aad(row))).toBe(notes.get(row.id));
  });

  it('an instance still on the old key alone can no longer read them, and says why', async () => {
    const [id] = [...values.keys()];
    const response = await before.app.inject({ method: 'GET', url: `${API}/secrets/${id}`, headers: admin.headers });
    expect(response.statusCode).toBe(500);
    expect(response.json().detail).toBe('Stored encrypted data is under an encryption key that is not configured; it was not returned');
  });
});

describe('key rotation over a damaged value', () => {
  let t: TestApp;
  let rotated: TestApp;
  let admin: TestUser;

  beforeAll(async () => {
    t = await buildTestApp({ secrets: { encryptionKeys: OLD } });
    admin = await createUser(t, { role: 'ADMIN' });
    for (const name of ['damaged.a', 'damaged.b', 'damaged.c']) {
      const response = await t.app.inject({ method: 'POST', url: `${API}/secrets`, headers: admin.headers, payload: { name, value: `${name}-value` } });
      expect(response.statusCode).toBe(201);
    }
    rotated = await buildTestApp({ share: t, secrets: { encryptionKeys: `${NEW},${OLD}` } });
  });

  afterAll(async () => {
    await rotated?.close();
    await t?.close();
  });

  it('rewraps the others, leaves the damaged one under its old key and fails loudly', async () => {
    const [victim] = (await secretRows(t)).filter((row) => row.name === 'damaged.b');
    const [version] = await versionRows(t, victim!.id);
    // Damage the wrapped data key: rotation authenticates the whole ciphertext, so it cannot be carried over.
    const parts = version!.encrypted_value.split('.');
    const wrapped = Buffer.from(parts[2]!, 'base64url');
    wrapped[20] = wrapped[20]! ^ 0x80;
    parts[2] = wrapped.toString('base64url');
    await t.app.infra.database.db.execute(sql`UPDATE secret_versions SET encrypted_value = ${parts.join('.')} WHERE id = ${version!.id}`);

    // One row per batch: the damaged row is skipped and the next batches still run.
    const incomplete = await rotated.app.vault.rotate(null, SYSTEM_CONTEXT, { batchSize: 1 }).catch((error: unknown) => error);
    expect(incomplete).toBeInstanceOf(KeyRotationIncompleteError);
    expect((incomplete as KeyRotationIncompleteError).result).toMatchObject({ rotated: 2, failed: 1, key_id: 'k2026' });
    // Re-running over HTTP finds only the damaged row left, and still says so.
    const response = await rotated.app.inject({ method: 'POST', url: `${API}/rotate`, headers: admin.headers });
    expect(response.statusCode).toBe(500);
    expect(response.json().detail).toMatch(/rewrapped 0 value\(s\), but 1 could not be opened/);
    expect(response.body).not.toContain('damaged.b-value');
    const versions = await versionRows(t);
    expect(versions.filter((row) => row.encrypted_value.startsWith('v1.k2026.'))).toHaveLength(2);
    expect(versions.find((row) => row.id === version!.id)!.encrypted_value.startsWith('v1.k2025.')).toBe(true);
    const events = await auditEvents(t, 'VAULT_KEY_ROTATED');
    expect(events.map((event) => [event.details.rotated, event.details.failed])).toEqual([
      [2, 1],
      [0, 1],
    ]);

    // A flipped byte in the data part is caught when the value is read.
    const [other] = (await secretRows(t)).filter((row) => row.name === 'damaged.c');
    await t.app.infra.database.db.execute(sql`UPDATE secrets SET encrypted_value = ${flipOneByte(other!.encrypted_value)} WHERE id = ${other!.id}`);
    const read = await rotated.app.inject({ method: 'GET', url: `${API}/secrets/${other!.id}`, headers: admin.headers });
    expect(read.statusCode).toBe(500);
    expect(read.body).not.toContain('damaged.c-value');
  });
});

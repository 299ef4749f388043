import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_CONTEXT, type Actor } from '../../src/modules/auth/permissions.js';
import { createVaultRepository } from '../../src/modules/vault/vault.repository.js';
import { createVaultService, type VaultNotifier } from '../../src/modules/vault/vault.service.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { flipOneByte, secretRows, tablesContaining, versionRows } from './helpers.js';

const API = '/api/v1/vault';

describe('vault API', () => {
  let t: TestApp;
  let admin: TestUser;
  let manager: TestUser;
  let analyst: TestUser;
  /** Every plaintext stored during the suite: none of them may appear anywhere in the database or the audit trail. */
  const plaintexts: string[] = [];

  function plaintext(label: string): string {
    const value = `${label}-${randomUUID()}`;
    plaintexts.push(value);
    return value;
  }

  async function createSecret(name: string, value: string, description?: string) {
    const response = await t.app.inject({
      method: 'POST',
      url: `${API}/secrets`,
      headers: admin.headers,
      payload: description === undefined ? { name, value } : { name, value, description },
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json<{ id: string; name: string; version: number }>();
  }

  beforeAll(async () => {
    t = await buildTestApp();
    [admin, manager, analyst] = await Promise.all([
      createUser(t, { role: 'ADMIN' }),
      createUser(t, { role: 'MANAGER' }),
      createUser(t, { role: 'ANALYST' }),
    ]);
  });

  afterAll(async () => {
    await t?.close();
  });

  it('stores a secret encrypted: the plaintext is in neither secrets.encrypted_value nor secret_versions', async () => {
    const value = plaintext('sk-live');
    const created = await createSecret('openai.api_key', value, 'provider key');
    expect(created).toMatchObject({ name: 'openai.api_key', description: 'provider key', version: 1, created_by: admin.user.id, last_accessed_at: null });
    expect(created).not.toHaveProperty('value');

    const [row] = (await secretRows(t)).filter((item) => item.id === created.id);
    expect(row!.encrypted_value.startsWith('v1.test1.')).toBe(true);
    expect(row!.encrypted_value).not.toContain(value);
    const versions = await versionRows(t, created.id);
    expect(versions).toHaveLength(1);
    expect(versions[0]!.encrypted_value).toBe(row!.encrypted_value);
    expect(Buffer.from(versions[0]!.encrypted_value.split('.')[4]!, 'base64url').toString('latin1')).not.toContain(value);
    expect(await tablesContaining(t, value)).toEqual([]);

    const [event] = (await auditEvents(t, 'VAULT_SECRET_CREATED')).filter((item) => item.resource_id === created.id);
    expect(event).toMatchObject({ user_id: admin.user.id, details: { secret_name: 'openai.api_key', version: 1 } });
    expect(String(event!.details.value_hmac)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
  });

  it('enforces the role on every route: analysts list, managers reveal, admins manage', async () => {
    const secret = await createSecret('rbac.secret', plaintext('rbac'));
    const routes = [
      { method: 'GET', url: `${API}/secrets`, minimum: 'ANALYST' },
      { method: 'GET', url: `${API}/secrets/${secret.id}/versions`, minimum: 'ANALYST' },
      { method: 'GET', url: `${API}/secrets/${secret.id}`, minimum: 'MANAGER' },
      { method: 'GET', url: `${API}/secrets/${secret.id}/versions/1`, minimum: 'ADMIN' },
      { method: 'POST', url: `${API}/secrets`, minimum: 'ADMIN', payload: { name: 'rbac.other', value: 'x' } },
      { method: 'PUT', url: `${API}/secrets/${secret.id}`, minimum: 'ADMIN', payload: { description: 'changed' } },
      { method: 'POST', url: `${API}/rotate`, minimum: 'ADMIN' },
      { method: 'DELETE', url: `${API}/secrets/${secret.id}`, minimum: 'ADMIN' },
    ] as const;
    const rank = { ANALYST: 0, MANAGER: 1, ADMIN: 2 };
    for (const route of routes) {
      const anonymous = await t.app.inject({ method: route.method, url: route.url, ...('payload' in route ? { payload: route.payload } : {}) });
      expect(anonymous.statusCode, `${route.method} ${route.url} anonymous`).toBe(401);
      for (const [role, user] of [['ANALYST', analyst], ['MANAGER', manager], ['ADMIN', admin]] as const) {
        const response = await t.app.inject({
          method: route.method,
          url: route.url,
          headers: user.headers,
          ...('payload' in route ? { payload: route.payload } : {}),
        });
        const allowed = rank[role] >= rank[route.minimum];
        expect(response.statusCode, `${route.method} ${route.url} as ${role}: ${response.body}`).toSatisfy((status: number) =>
          allowed ? status >= 200 && status < 300 : status === 403,
        );
      }
    }
  });

  it('reveals to a manager, records the access without the value and stamps last_accessed_at', async () => {
    const value = plaintext('db-password');
    const secret = await createSecret('warehouse.password', value);
    const response = await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}`, headers: manager.headers });
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = response.json();
    expect(body).toMatchObject({ id: secret.id, name: 'warehouse.password', version: 1, value });
    expect(body.last_accessed_at).not.toBeNull();

    const accesses = (await auditEvents(t, 'VAULT_SECRET_ACCESSED')).filter((item) => item.resource_id === secret.id);
    expect(accesses).toHaveLength(1);
    expect(accesses[0]).toMatchObject({ user_id: manager.user.id, details: { secret_name: 'warehouse.password', version: 1, via: 'reveal' } });
    const [created] = (await auditEvents(t, 'VAULT_SECRET_CREATED')).filter((item) => item.resource_id === secret.id);
    // The keyed fingerprint correlates the two events without storing the value.
    expect(accesses[0]!.details.value_hmac).toBe(created!.details.value_hmac);

    const listed = await t.app.inject({ method: 'GET', url: `${API}/secrets?limit=200`, headers: analyst.headers });
    const item = listed.json().items.find((entry: { id: string }) => entry.id === secret.id);
    expect(item.last_accessed_at).toBe(body.last_accessed_at);
    expect(item).not.toHaveProperty('value');
  });

  it('lists metadata only, by name, a page at a time', async () => {
    for (const name of ['page.a', 'page.b', 'page.c']) await createSecret(name, plaintext(name));
    const first = await t.app.inject({ method: 'GET', url: `${API}/secrets?limit=2`, headers: analyst.headers });
    expect(first.statusCode).toBe(200);
    const page1 = first.json();
    expect(page1.items).toHaveLength(2);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const names: string[] = page1.items.map((item: { name: string }) => item.name);
    let cursor: string | null = page1.next_cursor;
    while (cursor) {
      const next = await t.app.inject({ method: 'GET', url: `${API}/secrets?limit=2&cursor=${cursor}`, headers: analyst.headers });
      const page = next.json();
      names.push(...page.items.map((item: { name: string }) => item.name));
      cursor = page.next_cursor;
    }
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['page.a', 'page.b', 'page.c']));
    expect(JSON.stringify(page1)).not.toContain('value');
    const bad = await t.app.inject({ method: 'GET', url: `${API}/secrets?cursor=nonsense`, headers: analyst.headers });
    expect(bad.statusCode).toBe(400);
  });

  it('updates make new versions; older versions stay readable by admins only', async () => {
    const v1 = plaintext('token-v1');
    const v2 = plaintext('token-v2');
    const secret = await createSecret('webhook.token', v1);
    const updated = await t.app.inject({ method: 'PUT', url: `${API}/secrets/${secret.id}`, headers: admin.headers, payload: { value: v2 } });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toMatchObject({ version: 2, name: 'webhook.token' });
    expect(updated.json()).not.toHaveProperty('value');

    const described = await t.app.inject({ method: 'PUT', url: `${API}/secrets/${secret.id}`, headers: admin.headers, payload: { description: 'rotated monthly' } });
    expect(described.json()).toMatchObject({ version: 2, description: 'rotated monthly' });

    const current = await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}`, headers: manager.headers });
    expect(current.json().value).toBe(v2);

    const versions = await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}/versions`, headers: analyst.headers });
    expect(versions.statusCode).toBe(200);
    expect(versions.json().items).toEqual([
      expect.objectContaining({ version: 2, is_current: true, created_by: admin.user.id }),
      expect.objectContaining({ version: 1, is_current: false, created_by: admin.user.id }),
    ]);
    expect(versions.body).not.toContain(v1);

    const old = await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}/versions/1`, headers: admin.headers });
    expect(old.statusCode).toBe(200);
    expect(old.json()).toMatchObject({ secret_id: secret.id, version: 1, is_current: false, value: v1 });
    const missing = await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}/versions/9`, headers: admin.headers });
    expect(missing.statusCode).toBe(404);

    const rows = await versionRows(t, secret.id);
    expect(rows.map((row) => row.version)).toEqual([1, 2]);
    const [secretRow] = (await secretRows(t)).filter((row) => row.id === secret.id);
    expect(secretRow!.current_version).toBe(2);
    expect(secretRow!.encrypted_value).toBe(rows[1]!.encrypted_value);

    const updates = (await auditEvents(t, 'VAULT_SECRET_UPDATED')).filter((item) => item.resource_id === secret.id);
    expect(updates.map((item) => item.details.version)).toEqual([2, 2]);
    expect(updates[0]!.details).toMatchObject({ previous_version: 1, secret_name: 'webhook.token' });
    const accesses = (await auditEvents(t, 'VAULT_SECRET_ACCESSED')).filter((item) => item.resource_id === secret.id);
    expect(accesses.map((item) => [item.user_id, item.details.via, item.details.version])).toEqual([
      [manager.user.id, 'reveal', 2],
      [admin.user.id, 'reveal_version', 1],
    ]);
  });

  it('answers 409 for a duplicate name and 422 for a bad name, a bad body or an empty update', async () => {
    await createSecret('dup.name', plaintext('dup'));
    const duplicate = await t.app.inject({ method: 'POST', url: `${API}/secrets`, headers: admin.headers, payload: { name: 'dup.name', value: 'other' } });
    expect(duplicate.statusCode).toBe(409);
    expect(duplicate.headers['content-type']).toContain('application/problem+json');

    for (const name of ['', 'has space', 'semi;colon', 'ü-umlaut', 'x'.repeat(129)]) {
      const response = await t.app.inject({ method: 'POST', url: `${API}/secrets`, headers: admin.headers, payload: { name, value: 'v' } });
      expect(response.statusCode, name).toBe(422);
      expect(response.json().errors).toEqual(expect.arrayContaining([expect.objectContaining({ pointer: '/name' })]));
    }
    const empty = await t.app.inject({ method: 'POST', url: `${API}/secrets`, headers: admin.headers, payload: { name: 'ok.name', value: '' } });
    expect(empty.statusCode).toBe(422);
    const extra = await t.app.inject({ method: 'POST', url: `${API}/secrets`, headers: admin.headers, payload: { name: 'ok.name', value: 'v', created_by: admin.user.id } });
    expect(extra.statusCode).toBe(422);
    const [secret] = (await secretRows(t)).filter((row) => row.name === 'dup.name');
    const noop = await t.app.inject({ method: 'PUT', url: `${API}/secrets/${secret!.id}`, headers: admin.headers, payload: {} });
    expect(noop.statusCode).toBe(422);
  });

  it('answers 404 for unknown ids and 422 for malformed ones, on every route', async () => {
    const unknown = randomUUID();
    const cases = [
      { method: 'GET', url: `${API}/secrets/${unknown}` },
      { method: 'PUT', url: `${API}/secrets/${unknown}`, payload: { value: 'x' } },
      { method: 'DELETE', url: `${API}/secrets/${unknown}` },
      { method: 'GET', url: `${API}/secrets/${unknown}/versions` },
      { method: 'GET', url: `${API}/secrets/${unknown}/versions/1` },
    ] as const;
    for (const route of cases) {
      const response = await t.app.inject({ method: route.method, url: route.url, headers: admin.headers, ...('payload' in route ? { payload: route.payload } : {}) });
      expect(response.statusCode, `${route.method} ${route.url}`).toBe(404);
      const malformed = await t.app.inject({
        method: route.method,
        url: route.url.replace(unknown, 'not-a-uuid'),
        headers: admin.headers,
        ...('payload' in route ? { payload: route.payload } : {}),
      });
      expect(malformed.statusCode, `${route.method} malformed`).toBe(422);
    }
  });

  it('soft-deletes: gone from the API at once, the name is free, the rows are purged after the retention period', async () => {
    const secret = await createSecret('to.delete', plaintext('del'));
    const removed = await t.app.inject({ method: 'DELETE', url: `${API}/secrets/${secret.id}`, headers: admin.headers });
    expect(removed.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}`, headers: admin.headers })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}/versions`, headers: admin.headers })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: `${API}/secrets/${secret.id}`, headers: admin.headers })).statusCode).toBe(404);
    const listed = await t.app.inject({ method: 'GET', url: `${API}/secrets?limit=200`, headers: admin.headers });
    expect(listed.json().items.map((item: { id: string }) => item.id)).not.toContain(secret.id);
    await expect(t.app.vault.useSecret('to.delete')).rejects.toMatchObject({ status: 404 });
    const again = await createSecret('to.delete', plaintext('del-again'));
    expect(again.id).not.toBe(secret.id);

    const [deleted] = (await auditEvents(t, 'VAULT_SECRET_DELETED')).filter((item) => item.resource_id === secret.id);
    expect(deleted).toMatchObject({ user_id: admin.user.id, details: { secret_name: 'to.delete' } });

    // Still kept (retention 30 days by default)...
    expect(await t.app.vault.purgeDeleted()).toBe(0);
    expect((await secretRows(t)).some((row) => row.id === secret.id)).toBe(true);
    // ...and purged, with its versions, once the period has passed.
    const later = new Date(Date.now() + 31 * 86_400_000);
    // (Also purges the secret the RBAC test deleted.)
    expect(await t.app.vault.purgeDeleted(later)).toBeGreaterThanOrEqual(1);
    expect((await secretRows(t)).some((row) => row.id === secret.id)).toBe(false);
    expect(await versionRows(t, secret.id)).toEqual([]);
    expect((await secretRows(t)).some((row) => row.id === again.id)).toBe(true);
    const purged = (await auditEvents(t, 'VAULT_SECRET_DELETED')).filter((item) => item.resource_id === secret.id);
    expect(purged.map((item) => item.details.purged ?? false)).toEqual([false, true]);
  });

  it('lets server-side consumers use a secret by name, audited as the system naming the consumer', async () => {
    const value = plaintext('smtp');
    const secret = await createSecret('smtp.password', value);
    expect(await t.app.vault.useSecret('smtp.password', { consumer: 'tool:send_mail' })).toBe(value);
    const [use] = (await auditEvents(t, 'VAULT_SECRET_ACCESSED')).filter((item) => item.resource_id === secret.id);
    expect(use).toMatchObject({ user_id: null, details: { via: 'use', consumer: 'tool:send_mail', secret_name: 'smtp.password' } });
    await expect(t.app.vault.useSecret('no.such.secret')).rejects.toMatchObject({ status: 404 });
    // Server-side use only: the HTTP surface is exactly the contract's.
    const openapi = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    const vaultPaths = Object.keys(openapi.json().paths as Record<string, unknown>).filter((path) => path.startsWith(API));
    expect(vaultPaths.sort()).toEqual(
      [`${API}/rotate`, `${API}/secrets`, `${API}/secrets/{id}`, `${API}/secrets/{id}/versions`, `${API}/secrets/{id}/versions/{version}`].sort(),
    );
  });

  it('refuses a ciphertext copied to another row, and a flipped byte, with a clear 500 and a security alert', async () => {
    const valueA = plaintext('row-a');
    const valueB = plaintext('row-b');
    const a = await createSecret('copy.source', valueA);
    const b = await createSecret('copy.target', valueB);
    const db = t.app.infra.database.db;
    const [rowA] = (await secretRows(t)).filter((row) => row.id === a.id);
    await db.execute(sql`UPDATE secrets SET encrypted_value = ${rowA!.encrypted_value} WHERE id = ${b.id}`);
    await db.execute(sql`UPDATE secret_versions SET encrypted_value = ${rowA!.encrypted_value} WHERE secret_id = ${b.id}`);

    const moved = await t.app.inject({ method: 'GET', url: `${API}/secrets/${b.id}`, headers: manager.headers });
    expect(moved.statusCode).toBe(500);
    expect(moved.headers['content-type']).toContain('application/problem+json');
    expect(moved.json().detail).toBe('Stored encrypted data failed its integrity check; it was not returned');
    expect(moved.body).not.toContain(valueA);
    expect(moved.body).not.toContain(valueB);
    await expect(t.app.vault.useSecret('copy.target')).rejects.toMatchObject({ status: 500 });
    // The original row still opens.
    const source = await t.app.inject({ method: 'GET', url: `${API}/secrets/${a.id}`, headers: manager.headers });
    expect(source.json().value).toBe(valueA);

    await db.execute(sql`UPDATE secrets SET encrypted_value = ${flipOneByte(rowA!.encrypted_value)} WHERE id = ${a.id}`);
    const tampered = await t.app.inject({ method: 'GET', url: `${API}/secrets/${a.id}`, headers: manager.headers });
    expect(tampered.statusCode).toBe(500);
    expect(tampered.body).not.toContain(valueA);

    const alerts = (await auditEvents(t, 'SECURITY_ALERT')).filter((item) => item.resource_id === a.id || item.resource_id === b.id);
    expect(alerts.map((item) => item.resource_id)).toEqual([b.id, b.id, a.id]);
    expect(alerts[0]!.details).toMatchObject({ reason: 'vault_value_failed_integrity_check', secret_name: 'copy.target', code: 'authentication_failed' });
    // A failed read is not an access: no VAULT_SECRET_ACCESSED for the refused reads.
    const accesses = (await auditEvents(t, 'VAULT_SECRET_ACCESSED')).filter((item) => item.resource_id === b.id);
    expect(accesses).toEqual([]);
  });

  it('tells admins, through their notifications, that a secret was added and revealed', async () => {
    const value = plaintext('notified');
    const secret = await createSecret('notified.secret', value);
    await t.app.inject({ method: 'GET', url: `${API}/secrets/${secret.id}`, headers: manager.headers });
    const inbox = await t.app.inject({ method: 'GET', url: '/api/v1/notifications?limit=200', headers: admin.headers });
    expect(inbox.statusCode).toBe(200);
    const mine = inbox
      .json<{ items: { type: string; data: Record<string, unknown> }[] }>()
      .items.filter((item) => item.data.secret_id === secret.id)
      .map((item) => item.type)
      .sort();
    expect(mine).toEqual(['VAULT_SECRET_ACCESSED', 'VAULT_SECRET_ADDED']);
    expect(inbox.body).not.toContain(value);
    // Managers are not told.
    const managerInbox = await t.app.inject({ method: 'GET', url: '/api/v1/notifications?limit=200', headers: manager.headers });
    expect(managerInbox.body).not.toContain(secret.id);
  });

  it('notifies admins when a secret is added, revealed or fails its integrity check', async () => {
    const calls: { role: string; type: string; data?: Record<string, unknown> }[] = [];
    const notifier: VaultNotifier = {
      notifyRole: async (role, input) => {
        calls.push({ role, type: input.type, data: input.data });
      },
    };
    const vault = createVaultService({
      db: t.app.infra.database.db,
      repository: createVaultRepository(),
      audit: t.app.audit,
      fieldCipher: t.app.fieldCipher,
      fingerprinter: t.app.audit,
      notifier: () => notifier,
      retentionMs: 0,
    });
    const actorOf = (user: TestUser): Actor => ({ userId: user.user.id, username: user.user.username, role: user.user.role, sessionId: randomUUID() });
    const value = plaintext('notify');
    const created = await vault.create(actorOf(admin), { name: 'notify.me', value }, SYSTEM_CONTEXT);
    await vault.reveal(actorOf(manager), created.id, SYSTEM_CONTEXT);
    expect(calls).toEqual([
      { role: 'ADMIN', type: 'VAULT_SECRET_ADDED', data: expect.objectContaining({ secret_id: created.id, secret_name: 'notify.me' }) },
      { role: 'ADMIN', type: 'VAULT_SECRET_ACCESSED', data: expect.objectContaining({ secret_id: created.id, accessed_by: manager.user.username }) },
    ]);
    const [row] = (await secretRows(t)).filter((item) => item.id === created.id);
    await t.app.infra.database.db.execute(sql`UPDATE secrets SET encrypted_value = ${flipOneByte(row!.encrypted_value)} WHERE id = ${created.id}`);
    await expect(vault.reveal(actorOf(manager), created.id, SYSTEM_CONTEXT)).rejects.toMatchObject({ status: 500 });
    expect(calls[2]).toEqual({ role: 'ADMIN', type: 'SECURITY_ALERT', data: expect.objectContaining({ secret_id: created.id, version: 1 }) });
    expect(calls).toHaveLength(3);
    expect(JSON.stringify(calls)).not.toContain(value);
    await expect(vault.reveal(actorOf(analyst), created.id, SYSTEM_CONTEXT)).rejects.toMatchObject({ status: 403 });
    await expect(vault.create(actorOf(manager), { name: 'x', value: 'y' }, SYSTEM_CONTEXT)).rejects.toMatchObject({ status: 403 });
  });

  it('never writes a value into the audit trail or any other table', async () => {
    expect(plaintexts.length).toBeGreaterThan(10);
    for (const value of plaintexts) {
      expect(await tablesContaining(t, value), value).toEqual([]);
    }
    const events = await auditEvents(t, 'VAULT_SECRET_ACCESSED');
    expect(events.length).toBeGreaterThan(0);
  });
});

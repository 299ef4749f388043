import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { eventually } from '../helpers/eventually.js';
import { tablesContaining } from '../vault/helpers.js';
import { createUser, type TestUser } from '../helpers/users.js';

const API = '/api/v1';
let t: TestApp;
let admin: TestUser;

beforeAll(async () => {
  t = await buildTestApp();
  admin = await createUser(t, { role: 'ADMIN' });
});

afterAll(async () => {
  await t?.close();
});

const request = (method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, who: TestUser, payload?: Record<string, unknown>) =>
  t.app.inject({ method, url: `${API}${url}`, headers: who.headers, ...(payload ? { payload } : {}) });

async function createKey(who: TestUser, body: Record<string, unknown> = { name: 'notebook', scopes: ['chat'] }) {
  const response = await request('POST', '/api-keys', who, body);
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { id: string; key: string; prefix: string; scopes: string[]; expires_at: string; name: string };
}

describe('POST /api-keys', () => {
  it('answers the key once (cdsa_ + 256 bits in base 62), keeps only its hash, and audits API_KEY_CREATED', async () => {
    const user = await createUser(t);
    const before = Date.now();
    const created = await createKey(user, { name: 'laptop', scopes: ['chat', 'embeddings'], expires_in_days: 30 });

    expect(created.key).toMatch(/^cdsa_[0-9A-Za-z]{43}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    expect(created.prefix).toHaveLength(13);
    expect(created).toMatchObject({ name: 'laptop', scopes: ['chat', 'embeddings'], user_id: user.user.id, last_used_at: null });
    const expires = Date.parse(created.expires_at);
    expect(expires - before).toBeGreaterThan(29.9 * 86_400_000);
    expect(expires - before).toBeLessThan(30.1 * 86_400_000);
    // Nowhere in the database (only its SHA-256), nor in the listing.
    expect(await tablesContaining(t, created.key)).toEqual([]);
    const listed = (await request('GET', '/api-keys', user)).json();
    expect(listed.items).toHaveLength(1);
    expect(listed.items[0]).not.toHaveProperty('key');
    expect(JSON.stringify(listed)).not.toContain(created.key.slice(13));

    const events = (await auditEvents(t, 'API_KEY_CREATED')).filter((e) => e.resource_id === created.id);
    expect(events).toHaveLength(1);
    expect(events[0]!.details).toMatchObject({ name: 'laptop', prefix: created.prefix, scopes: ['chat', 'embeddings'] });
    expect(JSON.stringify(events[0])).not.toContain(created.key.slice(13));
  });

  it('two keys never look alike', async () => {
    const user = await createUser(t);
    const [a, b] = [await createKey(user), await createKey(user)];
    expect(a.key).not.toBe(b.key);
    expect(a.prefix).not.toBe(b.prefix);
  });

  it('422 for unknown scopes, no scopes, duplicates, or an expiry beyond 365 days', async () => {
    const user = await createUser(t);
    for (const body of [
      { name: 'x', scopes: ['admin'] },
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['chat', 'chat'] },
      { name: 'x', scopes: ['chat'], expires_in_days: 366 },
      { name: 'x', scopes: ['chat'], expires_in_days: 0 },
      { name: '', scopes: ['chat'] },
      { scopes: ['chat'] },
      { name: 'x', scopes: ['chat'], key: 'cdsa_mine' },
    ]) {
      expect((await request('POST', '/api-keys', user, body)).statusCode, JSON.stringify(body)).toBe(422);
    }
    const longest = await createKey(user, { name: 'year', scopes: ['mcp'], expires_in_days: 365 });
    expect(Date.parse(longest.expires_at) - Date.now()).toBeLessThanOrEqual(365 * 86_400_000);
  });
});

describe('GET and DELETE /api-keys', () => {
  it("lists one's own keys; ?user_id= for someone else's needs users:manage", async () => {
    const alice = await createUser(t);
    const bob = await createUser(t);
    const key = await createKey(alice);
    await createKey(bob);

    expect((await request('GET', '/api-keys', alice)).json().items.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect((await request('GET', `/api-keys?user_id=${alice.user.id}`, bob)).statusCode).toBe(403);
    const seen = await request('GET', `/api-keys?user_id=${alice.user.id}`, admin);
    expect(seen.statusCode).toBe(200);
    expect(seen.json().items.map((k: { id: string }) => k.id)).toEqual([key.id]);
  });

  it("revokes one's own key (204, then 404), another user's key is 404, an admin revokes anyone's; audited", async () => {
    const alice = await createUser(t);
    const bob = await createUser(t);
    const mine = await createKey(alice);
    const other = await createKey(alice);

    expect((await request('DELETE', `/api-keys/${mine.id}`, bob)).statusCode).toBe(404);
    expect((await request('DELETE', `/api-keys/${mine.id}`, alice)).statusCode).toBe(204);
    expect((await request('DELETE', `/api-keys/${mine.id}`, alice)).statusCode).toBe(404);
    expect((await request('DELETE', `/api-keys/${other.id}`, admin)).statusCode).toBe(204);
    expect((await request('GET', '/api-keys', alice)).json().items).toEqual([]);

    const revoked = (await auditEvents(t, 'API_KEY_REVOKED')).filter((e) => [mine.id, other.id].includes(String(e.resource_id)));
    expect(revoked.map((e) => [e.resource_id, e.user_id, e.details.by_owner])).toEqual([
      [mine.id, alice.user.id, true],
      [other.id, admin.user.id, false],
    ]);
  });
});

describe('authenticating with a key', () => {
  const auth = (key: string, scope: 'chat' | 'embeddings' | 'mcp' | 'documents:read' = 'chat') => t.app.apiKeys.service.authenticate(key, scope);

  it("acts as its user with the user's current role and clearance, within its scopes", async () => {
    const user = await createUser(t);
    const key = await createKey(user, { name: 'k', scopes: ['chat', 'mcp'] });

    const principal = await auth(key.key);
    expect(principal.actor).toMatchObject({ userId: user.user.id, role: 'ANALYST', clearance: 'INTERNAL', apiKeyId: key.id });
    await expect(auth(key.key, 'embeddings')).rejects.toMatchObject({ status: 403 });
    await expect(auth(key.key, 'mcp')).resolves.toMatchObject({ keyId: key.id });

    // A promotion applies to the very next request: nothing about the user is cached with the key.
    const promoted = await request('PATCH', `/users/${user.user.id}`, admin, { role: 'MANAGER', clearance: 'CONFIDENTIAL' });
    expect(promoted.statusCode, promoted.body).toBe(200);
    expect((await auth(key.key)).actor).toMatchObject({ role: 'MANAGER', clearance: 'CONFIDENTIAL' });
  });

  it('stops at once when revoked, expired or its user is deactivated; a wrong or malformed key is refused alike', async () => {
    const user = await createUser(t);
    const [revoked, expired, other] = [await createKey(user), await createKey(user), await createKey(user)];
    await expect(auth(revoked.key)).resolves.toBeDefined();

    expect((await request('DELETE', `/api-keys/${revoked.id}`, user)).statusCode).toBe(204);
    await expect(auth(revoked.key)).rejects.toMatchObject({ status: 401 });

    await queryRows(t.app.infra.database.db, sql`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ${expired.id}`);
    await expect(auth(expired.key)).rejects.toMatchObject({ status: 401 });

    // Same prefix, different rest: not the key.
    const forged = other.key.slice(0, 13) + (other.key[13] === 'A' ? 'B' : 'A') + other.key.slice(14);
    for (const wrong of [forged, 'cdsa_short', `${other.key}x`, 'not-a-key']) {
      await expect(auth(wrong), wrong).rejects.toMatchObject({ status: 401 });
    }

    await expect(auth(other.key)).resolves.toBeDefined();
    expect((await request('PATCH', `/users/${user.user.id}`, admin, { is_active: false })).statusCode).toBe(200);
    await expect(auth(other.key)).rejects.toMatchObject({ status: 401 });
  });

  it('keeps last_used_at, written at most once a minute', async () => {
    const user = await createUser(t);
    const key = await createKey(user);
    await auth(key.key);
    const read = async () => {
      const [row] = await queryRows<{ last_used_at: Date | string | null }>(t.app.infra.database.db, sql`SELECT last_used_at FROM api_keys WHERE id = ${key.id}`);
      return row!.last_used_at === null ? null : new Date(row!.last_used_at);
    };
    await eventually(async () => (await read()) !== null);
    const first = (await read())!.getTime();
    await auth(key.key);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await read())!.getTime()).toBe(first);
    const listed = (await request('GET', '/api-keys', user)).json().items[0];
    expect(Date.parse(listed.last_used_at)).toBe(first);
  });
});

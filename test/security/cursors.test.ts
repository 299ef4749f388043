import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteAccess } from '../../src/plugins/auth.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from '../documents/helpers.js';

/**
 * Cursors come back from clients, so a forged one is untrusted input like any other: on every list route of the route
 * table (every route that declares a `cursor` query parameter, now or later) it must be refused as a 400 problem on
 * /cursor — or, when it happens to be well-formed, simply page — and never reach the database as a value its column
 * cannot hold (a 500).
 */

/** Objects that list routes with path parameters list from; a new such route fails the test until it has one. */
const PATH_FIXTURES: Record<string, (t: TestApp, admin: TestUser) => Promise<Record<string, string>>> = {
  '/api/v1/documents/:id/chunks': async (t, admin) => {
    const document = await uploadIndexed(t, admin, 'cursor.txt', `paged passages ${randomUUID()}`);
    return { id: document.id };
  },
  '/api/v1/documents/:id/access-log': async (t, admin) => {
    const document = await uploadIndexed(t, admin, 'access-log.txt', `logged passages ${randomUUID()}`);
    return { id: document.id };
  },
  '/api/v1/tools/:id/executions': async (t, admin) => {
    const name = `cursor_${randomUUID().slice(0, 8)}`;
    const tool = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tools',
      headers: admin.headers,
      payload: { name, implementation: { type: 'builtin', builtin: 'redact_text' } },
    });
    if (tool.statusCode !== 201) throw new Error(`tool registration failed: ${tool.statusCode} ${tool.body}`);
    return { id: name };
  },
  '/api/v1/vault/secrets/:id/versions': async (t, admin) => {
    const secret = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vault/secrets',
      headers: admin.headers,
      payload: { name: `cursor.${randomUUID().slice(0, 8)}`, value: 'v' },
    });
    if (secret.statusCode !== 201) throw new Error(`secret creation failed: ${secret.statusCode} ${secret.body}`);
    return { id: (secret.json() as { id: string }).id };
  },
};

const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/** Field names the lists' cursors use (and a few more); each forged cursor sets all of them to one bad value. */
const FIELDS = ['c', 'i', 't', 'u', 'id', 'seq', 'time', 'name', 'version'];
const BAD_VALUES: unknown[] = [
  'garbage',
  '',
  '\u0000',
  'x'.repeat(600),
  randomUUID(),
  '2026-02-31T00:00:00.000Z',
  '+275760-09-13T00:00:00.000Z',
  '-271821-04-20T00:00:00.000Z',
  -1.5,
  1e300,
  2 ** 40,
  2 ** 53 + 2,
  null,
  true,
  {},
  [1],
];
const NOT_OBJECTS = ['not-a-cursor', '%%%', encode(null), encode([]), encode('x'), encode(42), Buffer.from('{"seq":', 'utf8').toString('base64url')];

describe('forged cursors on every list route, from the route table', () => {
  let t: TestApp;
  let admin: TestUser;
  let lists: RouteAccess[];

  beforeAll(async () => {
    t = await buildTestApp();
    admin = await createUser(t, { role: 'ADMIN' });
    lists = t.app.routeAccessTable().filter((route) => route.method === 'GET' && route.url.startsWith('/api/') && route.queryParameters.includes('cursor'));
  });
  afterAll(async () => {
    await t.close();
  });

  async function urlOf(route: RouteAccess): Promise<string> {
    if (!/:/.test(route.url)) return route.url;
    const fixture = PATH_FIXTURES[route.url];
    if (!fixture) throw new Error(`add ${route.url} to PATH_FIXTURES in test/security/cursors.test.ts`);
    const params = await fixture(t, admin);
    return route.url.replace(/:([A-Za-z_]+)/g, (_match, name: string) => params[name] ?? randomUUID());
  }

  it('finds the lists of every module', () => {
    expect(lists.map((route) => route.url)).toEqual(
      expect.arrayContaining(['/api/v1/approvals', '/api/v1/approvals/my-requests', '/api/v1/users', '/api/v1/chat/sessions', '/api/v1/tools/:id/executions', '/api/v1/vault/secrets/:id/versions']),
    );
  });

  it('answers a forged cursor with a 400 problem on /cursor (or a page, when it is well-formed), never a 500', async () => {
    const failures: string[] = [];
    const forged = [...NOT_OBJECTS.map((cursor) => ({ cursor, mustRefuse: true })), ...BAD_VALUES.map((value) => ({ cursor: encode(Object.fromEntries(FIELDS.map((field) => [field, value]))), mustRefuse: false }))];
    for (const route of lists) {
      const url = await urlOf(route);
      for (const { cursor, mustRefuse } of forged) {
        const response = await t.app.inject({ method: 'GET', url: `${url}?cursor=${encodeURIComponent(cursor)}`, headers: admin.headers });
        const refused =
          response.statusCode === 400 &&
          String(response.headers['content-type']).startsWith('application/problem+json') &&
          (response.json() as { errors?: { pointer: string }[] }).errors?.[0]?.pointer === '/cursor';
        if (!(refused || (!mustRefuse && response.statusCode === 200))) {
          failures.push(`${route.url} cursor=${Buffer.from(cursor, 'base64url').toString('utf8').slice(0, 60)} → ${response.statusCode}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('still pages with the cursors the lists hand out', async () => {
    await createUser(t);
    const first = (await t.app.inject({ method: 'GET', url: '/api/v1/users?limit=1', headers: admin.headers })).json() as { items: { id: string }[]; next_cursor: string };
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await t.app.inject({ method: 'GET', url: `/api/v1/users?limit=1&cursor=${first.next_cursor}`, headers: admin.headers });
    expect(second.statusCode).toBe(200);
    expect(second.json().items[0].id).not.toBe(first.items[0]!.id);
  });
});

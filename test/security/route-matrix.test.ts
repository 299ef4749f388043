import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteAccess } from '../../src/plugins/auth.js';
import { PERMISSION_MIN_ROLE, ROLES, roleAtLeast, type Role } from '../../src/modules/auth/permissions.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { ROUTE_SCOPES } from './resources.js';

/**
 * Function- and object-level authorization, generated from the app's own route table: every route registered by any
 * module (now or later) is checked without a token, with each role below its declared permission, and — for routes
 * with an object id — as a user who does not own the object.
 */

const PARAM_SAMPLES: Record<string, string> = { version: '1', provider: 'openai' };

/** Fills path parameters: `id` (or the given ones) with the object's, the rest with samples or random UUIDs. */
function concreteUrl(url: string, params: string | Record<string, string> = randomUUID()): string {
  const given = typeof params === 'string' ? { id: params } : params;
  return url
    .replace(/:([A-Za-z_]+)/g, (_match, name: string) => given[name] ?? PARAM_SAMPLES[name] ?? randomUUID())
    .replace(/\*$/, 'unknown/model');
}

const hasParams = (route: RouteAccess) => /[:*]/.test(route.url);
const minimumRole = (route: RouteAccess): Role => (route.requires ? PERMISSION_MIN_ROLE[route.requires] : 'ANALYST');
const name = (route: RouteAccess) => `${route.method} ${route.url}`;

describe('route × role matrix and BOLA, from the route table', () => {
  let t: TestApp;
  let routes: RouteAccess[];
  const users = {} as Record<Role, TestUser>;

  beforeAll(async () => {
    t = await buildTestApp();
    routes = t.app.routeAccessTable().filter((route) => route.url.startsWith('/api/'));
    for (const role of ROLES) users[role] = await createUser(t, { role });
  });
  afterAll(async () => {
    await t.close();
  });

  const call = (route: RouteAccess, url: string, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: route.method as 'GET',
      url,
      headers,
      ...(['POST', 'PUT', 'PATCH'].includes(route.method) ? { payload: {} } : {}),
    });

  it('sees the routes of every module', () => {
    const urls = routes.map(name);
    expect(urls).toEqual(expect.arrayContaining(['POST /api/v1/auth/login', 'GET /api/v1/auth/me', 'GET /api/v1/users', 'PATCH /api/v1/users/:id']));
    expect(routes.length).toBeGreaterThan(10);
  });

  it('every non-public route answers 401 without credentials (and to a bogus ticket or a token in the URL)', async () => {
    const failures: string[] = [];
    for (const route of routes.filter((candidate) => !candidate.public)) {
      const url = concreteUrl(route.url);
      for (const attempt of [url, `${url}?ticket=bogus`, `${url}?access_token=${users.ADMIN.access_token}`]) {
        const response = await call(route, attempt);
        if (response.statusCode !== 401 || response.headers['www-authenticate'] !== 'Bearer') {
          failures.push(`${route.method} ${attempt.split('?')[0]}${attempt.includes('?') ? '?…' : ''} → ${response.statusCode}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('every route answers 403 to each role below its declared permission', async () => {
    const failures: string[] = [];
    let checked = 0;
    for (const route of routes.filter((candidate) => candidate.requires)) {
      for (const role of ROLES.filter((candidate) => !roleAtLeast(candidate, minimumRole(route)))) {
        checked += 1;
        const response = await call(route, concreteUrl(route.url), users[role].headers);
        if (response.statusCode !== 403) failures.push(`${name(route)} as ${role} → ${response.statusCode}`);
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(0);
  });

  it('every GET route lets its lowest permitted role through (no 401/403, no 500)', async () => {
    const failures: string[] = [];
    for (const route of routes.filter((candidate) => candidate.method === 'GET' && !candidate.public && !candidate.acceptsStreamTicket)) {
      const response = await call(route, concreteUrl(route.url), users[minimumRole(route)].headers);
      if ([401, 403, 500].includes(response.statusCode)) failures.push(`${name(route)} as ${minimumRole(route)} → ${response.statusCode}`);
    }
    expect(failures).toEqual([]);
  });

  it('every route with an object id is classified as owned or shared in test/security/resources.ts', () => {
    const unclassified = [...new Set(routes.filter((route) => !route.public && hasParams(route)).map((route) => route.url))].filter(
      (url) => !(url in ROUTE_SCOPES),
    );
    expect(unclassified, 'add these routes to ROUTE_SCOPES with an owner fixture, or as shared with a reason').toEqual([]);
  });

  it("another user's object answers exactly like a missing one (404), never 403 or 200, and is left untouched", async () => {
    const failures: string[] = [];
    let checked = 0;
    const owned = Object.entries(ROUTE_SCOPES).filter(([url]) => routes.some((route) => route.url === url));
    for (const [url, scope] of owned) {
      if (scope.kind !== 'owned') continue;
      // Reads before writes, so a DELETE does not hide a read leak.
      const methods = routes
        .filter((route) => route.url === url)
        .sort((a, b) => Number(b.method === 'GET') - Number(a.method === 'GET'));
      for (const route of methods) {
        const owner = await createUser(t, { role: scope.ownerRole ?? minimumRole(route) });
        const intruder = await createUser(t, { role: scope.intruderRole ?? minimumRole(route) });
        const id = await scope.create(t, owner);
        checked += 1;
        const foreign = await call(route, concreteUrl(route.url, id), intruder.headers);
        const missing = await call(route, concreteUrl(route.url, typeof id === 'string' ? randomUUID() : Object.fromEntries(Object.keys(id).map((key) => [key, randomUUID()]))), intruder.headers);
        if (foreign.statusCode !== missing.statusCode || ![404, 422].includes(foreign.statusCode)) {
          failures.push(`${name(route)}: other's object → ${foreign.statusCode}, missing → ${missing.statusCode}`);
        }
        const getRoute = routes.find((candidate) => candidate.url === url && candidate.method === 'GET');
        if (getRoute) {
          const own = await call(getRoute, concreteUrl(url, id), owner.headers);
          if (own.statusCode !== 200 && own.statusCode !== 202) failures.push(`${name(route)}: the owner's own GET afterwards → ${own.statusCode}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(0);
  });
});

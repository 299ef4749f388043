import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_V1_HEADERS } from '../../src/http/api-v1.js';
import { UnauthorizedError } from '../../src/lib/errors.js';
import { neighbour } from '../../src/modules/wiring.js';
import { authenticatedSubtree, authPlugin } from '../../src/plugins/auth.js';
import { problemDetailsPlugin } from '../../src/plugins/problem-details.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';

describe('module wiring', () => {
  it('a neighbour that no module provides stops start-up, naming it', async () => {
    const app = Fastify();
    const approvals = neighbour(app, 'approvals');
    await expect(app.ready()).rejects.toThrow(/"approvals" is used by a module but no registered module provides it/);
    expect(typeof approvals).toBe('function');
  });

  it('a neighbour decorated later in the order resolves once the app is ready', async () => {
    const app = Fastify();
    const late = neighbour(app, 'chat');
    app.decorate('chat', { marker: 'chat service' } as never);
    await app.ready();
    expect(late()).toEqual({ marker: 'chat service' });
    await app.close();
  });
});

describe('HTTP subtrees own their authentication and headers', () => {
  it('a route registered outside every authenticated subtree, and not public, stops start-up', async () => {
    await expect(
      buildTestApp({
        beforeReady: (app) => {
          app.get('/v2/models', async () => ({ data: [] }));
        },
      }),
    ).rejects.toThrow(/routes outside every authenticated subtree and not marked public: GET \/v2\/models/);
  });

  it('a new subtree authenticates and checks permissions on its own, with its own headers', async () => {
    const app = Fastify();
    await app.register(problemDetailsPlugin);
    await app.register(authPlugin);
    const seen: string[] = [];
    await app.register(
      authenticatedSubtree({
        name: 'mcp',
        authenticate: async (request) => {
          seen.push(request.url);
          if (request.headers.authorization !== 'Bearer good') throw new UnauthorizedError();
          return { userId: 'u1', username: 'analyst', role: 'ANALYST', sessionId: 's1' };
        },
        headers: { 'content-security-policy': "default-src 'none'; sandbox" },
        routes: [
          async (subtree) =>
            subtree.register(async (routes) => {
              routes.get('/open', { config: { public: true } }, async () => ({ ok: true }));
              routes.get('/mine', async (request) => ({ user: app.requireActor(request).username }));
              routes.post('/admin', { config: { requires: 'users:manage' } }, async () => ({ ok: true }));
            }),
        ],
      }),
      { prefix: '/mcp' },
    );
    await app.ready();

    const open = await app.inject({ url: '/mcp/open' });
    expect(open.statusCode).toBe(200);
    expect(open.headers['content-security-policy']).toBe("default-src 'none'; sandbox");
    const anonymous = await app.inject({ url: '/mcp/mine' });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['content-security-policy']).toBe("default-src 'none'; sandbox");
    const mine = await app.inject({ url: '/mcp/mine', headers: { authorization: 'Bearer good' } });
    expect(mine.json()).toEqual({ user: 'analyst' });
    const admin = await app.inject({ method: 'POST', url: '/mcp/admin', headers: { authorization: 'Bearer good' } });
    expect(admin.statusCode).toBe(403);
    expect(seen).toEqual(['/mcp/mine', '/mcp/mine', '/mcp/admin']);
    expect(app.routeAccessTable().map((route) => [route.url, route.subtree])).toEqual([
      ['/mcp/open', 'mcp'],
      ['/mcp/mine', 'mcp'],
      ['/mcp/admin', 'mcp'],
    ]);
    await app.close();
  });

  describe('the /api/v1 subtree', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await buildTestApp();
    });
    afterAll(async () => {
      await t.close();
    });

    it('holds every API route, and only those', () => {
      const table = t.app.routeAccessTable();
      expect(table.filter((route) => route.url.startsWith('/api/')).every((route) => route.subtree === 'api-v1')).toBe(true);
      expect(table.filter((route) => route.subtree === 'api-v1').every((route) => route.url.startsWith('/api/v1/'))).toBe(true);
    });

    it('sends its headers on answers, refusals and public routes alike', async () => {
      const user = await createUser(t);
      for (const response of [
        await t.app.inject({ url: '/api/v1/auth/me', headers: user.headers }),
        await t.app.inject({ url: '/api/v1/auth/me' }),
        await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'nobody', password: 'x'.repeat(12) } }),
      ]) {
        expect(response.headers['content-security-policy']).toBe(API_V1_HEADERS['content-security-policy']);
      }
    });
  });
});

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { authenticatedSubtree } from '../../src/plugins/auth.js';
import { openTestDatabase, testSecrets, type TestApp } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';

/**
 * A stream route as the notifications module declares one (`acceptsStreamTicket`, a strict query schema), added to
 * the real app before it starts, so tickets are exercised over HTTP end to end.
 */
describe('stream tickets on a ticket-accepting route', () => {
  let database: Database;
  let app: FastifyInstance;
  let t: TestApp;

  beforeAll(async () => {
    database = await openTestDatabase();
    const config = loadConfig({ CDSA_ENV: 'test', LOG_LEVEL: 'silent', RATE_LIMIT_REQUESTS: '100000', AUTH_RATE_LIMIT_REQUESTS: '100000' }, '0.0.0-test');
    const secrets = testSecrets();
    app = await buildApp({ config, secrets, database });
    // A subtree of its own, authenticated by the identity module as /api/v1 is.
    await app.register(
      authenticatedSubtree({
        name: 'ticket-test',
        authenticate: (request) => app.identity.authenticate(request),
        headers: {},
        routes: [
          async (subtree) => {
            subtree.get(
              '/test-stream',
              {
                config: { acceptsStreamTicket: true },
                schema: { querystring: Type.Object({ since: Type.Optional(Type.String()) }, { additionalProperties: false }) },
              },
              async (request) => ({ user_id: app.requireActor(request).userId, query: request.query }),
            );
            subtree.post('/test-stream', { config: { acceptsStreamTicket: true } }, async () => ({ ok: true }));
          },
        ],
      }),
      { prefix: '/api/v1' },
    );
    await app.ready();
    t = { app, config, secrets, databaseUrl: undefined, close: async () => undefined };
  });
  afterAll(async () => {
    await app.close();
    await database.close();
  });

  const ticketFor = async (headers: Record<string, string>) =>
    (await app.inject({ method: 'POST', url: '/api/v1/auth/stream-ticket', headers })).json().ticket as string;

  it('a ticket opens the stream once, for its own user, and is removed from the query', async () => {
    const user = await createUser(t);
    const ticket = await ticketFor(user.headers);
    const first = await app.inject({ method: 'GET', url: `/api/v1/test-stream?ticket=${ticket}&since=5` });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({ user_id: user.user.id, query: { since: '5' } });
    const second = await app.inject({ method: 'GET', url: `/api/v1/test-stream?ticket=${ticket}` });
    expect(second.statusCode).toBe(401);
    expect(second.headers['www-authenticate']).toBe('Bearer');
  });

  it('a made-up ticket, an access token as ticket, and access_token in the URL are refused', async () => {
    const user = await createUser(t);
    expect((await app.inject({ method: 'GET', url: '/api/v1/test-stream?ticket=abc' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: `/api/v1/test-stream?ticket=${user.access_token}` })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: `/api/v1/test-stream?access_token=${user.access_token}` })).statusCode).toBe(401);
    // The header still works on the same route.
    expect((await app.inject({ method: 'GET', url: '/api/v1/test-stream', headers: user.headers })).statusCode).toBe(200);
  });

  it('tickets are for GET streams only', async () => {
    const user = await createUser(t);
    const ticket = await ticketFor(user.headers);
    expect((await app.inject({ method: 'POST', url: `/api/v1/test-stream?ticket=${ticket}` })).statusCode).toBe(401);
  });

  it('a ticket dies with its session', async () => {
    const user = await createUser(t);
    const ticket = await ticketFor(user.headers);
    expect((await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: user.headers })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: `/api/v1/test-stream?ticket=${ticket}` })).statusCode).toBe(401);
  });

  it('revocation listeners hear about logouts', async () => {
    const user = await createUser(t);
    const events: unknown[] = [];
    const off = app.identity.onRevoked((event) => events.push(event));
    await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: user.headers });
    off();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ userId: user.user.id, sessionId: expect.any(String) });
  });
});

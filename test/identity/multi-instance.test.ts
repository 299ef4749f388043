import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REVOCATION_CHANNEL } from '../../src/modules/auth/sessions.service.js';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { bearer, createUser, login } from '../helpers/users.js';

const API = '/api/v1';

/** Two instances on one PostgreSQL and one Redis: revocation, role changes, throttling and tickets hold across them. */
describe.runIf(multiInstance)('identity across instances', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await buildTestApp({ env: { LOGIN_MAX_FAILURES: '2' } });
    b = await buildTestApp({ share: a, env: { LOGIN_MAX_FAILURES: '2' } });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const me = (t: TestApp, headers: Record<string, string>) => t.app.inject({ method: 'GET', url: `${API}/auth/me`, headers });

  /** Resolves when instance `t` has received an identity message from elsewhere: no sleeping. */
  async function nextMessage(t: TestApp, predicate: (message: { kind: string; userId: string }) => boolean): Promise<void> {
    let off: (() => Promise<void>) | undefined;
    const received = new Promise<void>((resolve) => {
      void t.app.infra.pubsub
        .subscribe(REVOCATION_CHANNEL, (raw) => {
          if (predicate(JSON.parse(raw) as { kind: string; userId: string })) resolve();
        })
        .then((unsubscribe) => {
          off = unsubscribe;
        });
    });
    return received.finally(() => off?.());
  }

  it('a logout on one instance kills the token on the other (cached there)', async () => {
    const user = await createUser(a);
    expect((await me(b, user.headers)).statusCode).toBe(200);
    const heard = new Promise((resolve) => {
      const off = b.app.identity.onRevoked((event) => {
        if (event.userId === user.user.id) {
          off();
          resolve(event);
        }
      });
    });
    expect((await a.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: user.headers })).statusCode).toBe(204);
    await expect(heard).resolves.toMatchObject({ userId: user.user.id });
    expect((await me(b, user.headers)).statusCode).toBe(401);
  });

  it('a role change on one instance applies on the other at once', async () => {
    const admin = await createUser(a, { role: 'ADMIN' });
    const user = await createUser(a);
    const list = () => b.app.inject({ method: 'GET', url: `${API}/users`, headers: user.headers });
    expect((await list()).statusCode).toBe(403);
    const changed = nextMessage(b, (message) => message.kind === 'changed' && message.userId === user.user.id);
    expect((await a.app.inject({ method: 'PATCH', url: `${API}/users/${user.user.id}`, headers: admin.headers, payload: { role: 'ADMIN' } })).statusCode).toBe(200);
    await changed;
    expect((await list()).statusCode).toBe(200);
  });

  it('deactivation on one instance ends the sessions on the other', async () => {
    const admin = await createUser(a, { role: 'ADMIN' });
    const user = await createUser(a);
    expect((await me(b, user.headers)).statusCode).toBe(200);
    const revoked = nextMessage(b, (message) => message.kind === 'revoked' && message.userId === user.user.id);
    await a.app.inject({ method: 'PATCH', url: `${API}/users/${user.user.id}`, headers: admin.headers, payload: { is_active: false } });
    await revoked;
    expect((await me(b, user.headers)).statusCode).toBe(401);
  });

  it('failed logins count across instances', async () => {
    const user = await createUser(a);
    const attempt = (t: TestApp, password: string) =>
      t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { username: user.user.username, password } });
    expect((await attempt(a, 'Wrong-password-123')).statusCode).toBe(401);
    expect((await attempt(b, 'Wrong-password-123')).statusCode).toBe(401);
    const blocked = await attempt(a, user.password);
    expect(blocked.statusCode).toBe(429);
    expect((await attempt(b, user.password)).statusCode).toBe(429);
  });

  it('refresh-token reuse is caught whichever instance sees it', async () => {
    const user = await createUser(a);
    const session = await login(b, user.user.username, user.password);
    const refresh = (t: TestApp, token: string) => t.app.inject({ method: 'POST', url: `${API}/auth/refresh`, payload: { refresh_token: token } });
    const rotated = await refresh(a, session.refresh_token);
    expect(rotated.statusCode).toBe(200);
    expect((await me(a, bearer(rotated.json().access_token))).statusCode).toBe(200);
    const revoked = nextMessage(a, (message) => message.kind === 'revoked' && message.userId === user.user.id);
    expect((await refresh(b, session.refresh_token)).statusCode).toBe(401);
    await revoked;
    expect((await me(a, bearer(rotated.json().access_token))).statusCode).toBe(401);
  });

  it('a stream ticket issued by one instance is redeemed once by another', async () => {
    const user = await createUser(a);
    const { ticket } = (await a.app.inject({ method: 'POST', url: `${API}/auth/stream-ticket`, headers: user.headers })).json();
    await expect(b.app.identity.auth.authenticateStreamTicket(ticket)).resolves.toMatchObject({ userId: user.user.id });
    await expect(a.app.identity.auth.authenticateStreamTicket(ticket)).rejects.toMatchObject({ status: 401 });
  });
});

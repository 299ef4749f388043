import { randomBytes, randomUUID } from 'node:crypto';
import type { Role } from '../../src/modules/auth/permissions.js';
import type { UserView } from '../../src/modules/users/users.schemas.js';
import type { TestApp } from './app.js';

export interface TestUser {
  user: UserView;
  password: string;
  access_token: string;
  refresh_token: string;
  headers: { authorization: string };
}

export interface CreateUserOptions {
  role?: Role;
  username?: string;
  password?: string;
  email?: string;
  fullName?: string;
}

/** A password that passes the rules: random, so never on the common-password list. */
export function strongPassword(): string {
  return `Pw-${randomBytes(12).toString('base64url')}`;
}

export function uniqueUsername(prefix = 'user'): string {
  return `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}

/** Signs in through the API; throws with the response when it fails. */
export async function login(t: TestApp, username: string, password: string): Promise<{ access_token: string; refresh_token: string; user: UserView }> {
  const response = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password } });
  if (response.statusCode !== 200) throw new Error(`login of ${username} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

export function bearer(accessToken: string): { authorization: string } {
  return { authorization: `Bearer ${accessToken}` };
}

/**
 * A user with the requested role (default ANALYST), created through the users service, then signed in through
 * `POST /api/v1/auth/login` — so the tokens are real and the session exists.
 */
export async function createUser(t: TestApp, options: CreateUserOptions = {}): Promise<TestUser> {
  const username = options.username ?? uniqueUsername((options.role ?? 'ANALYST').toLowerCase());
  const password = options.password ?? strongPassword();
  await t.app.users.createUser(
    null,
    {
      username,
      email: options.email ?? `${username.toLowerCase()}@example.test`,
      password,
      fullName: options.fullName ?? null,
      role: options.role ?? 'ANALYST',
    },
    { origin: 'cli' },
  );
  const session = await login(t, username, password);
  return {
    user: session.user,
    password,
    access_token: session.access_token,
    refresh_token: session.refresh_token,
    headers: bearer(session.access_token),
  };
}

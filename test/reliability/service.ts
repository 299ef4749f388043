import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { multiInstance } from '../helpers/app.js';
import { readSse, type SseReader } from '../helpers/sse.js';
import { freePort, startProcess, waitForHttp, type RunningServer } from '../helpers/process.js';
import { hasPostgresBinaries, hasRedisServer } from '../helpers/services.js';
import { strongPassword, uniqueUsername } from '../helpers/users.js';

/**
 * The fault tests run in the PostgreSQL + Redis pass (like the other multi-instance tests) and only where the
 * PostgreSQL binaries and redis-server exist: they start private ones, which they restart and kill.
 */
export const canRunFaultTests = multiInstance && hasPostgresBinaries && hasRedisServer;

export interface Service extends RunningServer {
  dataDir: string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

const started: Service[] = [];

/**
 * The real server process (src/server.ts, as `npm start` runs it) on the given database and Redis. An instance started
 * with `sameSecretsAs` gets a copy of that one's generated development secrets (as instances of one deployment share
 * theirs), in a DATA_DIR of its own.
 */
export async function startService(env: Record<string, string>, sameSecretsAs?: Service): Promise<Service> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-rel-'));
  if (sameSecretsAs) fs.copyFileSync(path.join(sameSecretsAs.dataDir, 'dev-secrets.json'), path.join(dataDir, 'dev-secrets.json'));
  const port = await freePort();
  const server = startProcess(['src/server.ts'], {
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    RATE_LIMIT_REQUESTS: '100000',
    AUTH_RATE_LIMIT_REQUESTS: '100000',
    OLLAMA_BASE_URL: 'http://127.0.0.1:9',
    AUDIT_CHECKPOINT_INTERVAL: '0',
    // Like the test apps: managers and admins sign in with a password alone here (MFA has its own tests).
    MFA_REQUIRED_ROLES: '',
    // The clients here register themselves; closed registration is the default and has its own tests.
    REGISTRATION_MODE: 'open',
    ...env,
  });
  const service: Service = {
    ...server,
    dataDir,
    async kill() {
      if (server.child.exitCode !== null || server.child.signalCode !== null) return;
      server.child.kill('SIGKILL');
      await server.exited;
    },
  };
  started.push(service);
  try {
    await Promise.race([
      waitForHttp(`${server.url}/health/ready`, 90_000),
      server.exited.then((code) => {
        throw new Error(`the service exited (${code}) before it was ready:\n${server.output()}`);
      }),
    ]);
  } catch (error) {
    await service.kill();
    throw error;
  }
  return service;
}

export async function stopAllServices(): Promise<void> {
  await Promise.all(started.splice(0).map((service) => service.kill()));
}

export interface Client {
  token: string;
  userId: string;
  username: string;
  password: string;
}

export async function call(
  base: string,
  method: string,
  url: string,
  options: { token?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal ?? AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    body = { raw: text };
  }
  return { status: response.status, headers: response.headers, body };
}

/** A new ANALYST registered and signed in through the API. */
export async function registerClient(base: string): Promise<Client> {
  const username = uniqueUsername('rel');
  const password = strongPassword();
  const registered = await call(base, 'POST', '/api/v1/auth/register', { body: { username, email: `${username}@example.test`, password } });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${JSON.stringify(registered.body)}`);
  const session = await login(base, username, password);
  return { token: session.access_token, userId: (session.user as { id: string }).id, username, password };
}

export async function login(base: string, username: string, password: string): Promise<{ access_token: string; user: unknown }> {
  const response = await call(base, 'POST', '/api/v1/auth/login', { body: { username, password } });
  if (response.status !== 200) throw new Error(`login: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as { access_token: string; user: unknown };
}

/** A user of the given role, created by an admin through the API and signed in. */
export async function createStaff(base: string, adminToken: string, role: 'MANAGER' | 'ADMIN' | 'ANALYST'): Promise<Client> {
  const username = uniqueUsername(role.toLowerCase());
  const password = strongPassword();
  const created = await call(base, 'POST', '/api/v1/users', { token: adminToken, body: { username, email: `${username}@example.test`, password, role } });
  if (created.status !== 201) throw new Error(`create user: ${created.status} ${JSON.stringify(created.body)}`);
  const session = await login(base, username, password);
  return { token: session.access_token, userId: (session.user as { id: string }).id, username, password };
}

export type ChatEvents = SseReader<Record<string, unknown>>;

/** POSTs to a chat route and reads the event stream as it arrives. */
export function postSse(base: string, route: string, body: unknown, token: string): Promise<ChatEvents> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${base}${route}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(payload) },
      },
      (response) => resolve(readSse<Record<string, unknown>>(response)),
    );
    request.on('error', reject);
    request.end(payload);
  });
}

export const eventNames = (stream: ChatEvents): string[] => stream.events.map((event) => event.event);

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { multiInstance } from '../helpers/app.js';
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
 * The real server process (src/server.ts, as `npm start` runs it) on the given database and Redis. Instances given the
 * same `secretsDir` share the development secrets generated there (as instances of one deployment share theirs).
 */
export async function startService(env: Record<string, string>, secretsDir?: string): Promise<Service> {
  const dataDir = secretsDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-rel-'));
  const port = await freePort();
  const server = startProcess(['src/server.ts'], {
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    RATE_LIMIT_REQUESTS: '100000',
    AUTH_RATE_LIMIT_REQUESTS: '100000',
    OLLAMA_BASE_URL: 'http://127.0.0.1:9',
    AUDIT_CHECKPOINT_INTERVAL: '0',
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

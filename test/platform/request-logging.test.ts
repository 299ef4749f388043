import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp, loggerOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { buildTestApp, openTestDatabase, testSecrets } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';

function captureLog(): { stream: Writable; lines: () => { level: number; msg: string }[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number; msg: string }) };
}

async function appLoggingAt(level: string) {
  const config = loadConfig({ CDSA_ENV: 'test', LOG_LEVEL: level, OLLAMA_BASE_URL: 'http://127.0.0.1:9', AUDIT_CHECKPOINT_INTERVAL: '0' }, '0.0.0-test');
  const log = captureLog();
  const database = await openTestDatabase();
  const app = await buildApp({ config, secrets: testSecrets(), database, logger: { ...(loggerOptions(config) as object), stream: log.stream } });
  await app.ready();
  return { app, log, close: async () => (await app.close(), await database.close()) };
}

describe('request logging', () => {
  it('logs requests at debug, so the default info level carries warnings and errors only', async () => {
    const atDebug = await appLoggingAt('debug');
    try {
      await atDebug.app.inject({ method: 'GET', url: '/health' });
      const requestLines = atDebug.log.lines().filter((line) => /request/.test(line.msg));
      expect(requestLines.map((line) => line.msg)).toEqual(expect.arrayContaining(['incoming request', 'request completed']));
      // pino: 20 debug, 30 info.
      expect(requestLines.every((line) => line.level === 20)).toBe(true);
    } finally {
      await atDebug.close();
    }
  });
});

describe('bodiless POSTs with a JSON content type', () => {
  const t = buildTestApp();
  afterAll(async () => (await t).close());

  it('accepts POST /auth/logout with Content-Type: application/json and no body (204); malformed JSON is still 400', async () => {
    const app = await t;
    const user = await createUser(app, {});
    const loggedOut = await app.app.inject({
      method: 'POST',
      url: '/api/v1/auth/logout',
      headers: { ...user.headers, 'content-type': 'application/json' },
    });
    expect(loggedOut.statusCode).toBe(204);
    // The session really ended.
    expect((await app.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: user.headers })).statusCode).toBe(401);
    const malformed = await app.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"username":',
    });
    expect(malformed.statusCode).toBe(400);
    // A route that needs a body still says so (422), rather than reading an empty one as nothing wrong.
    const empty = await app.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'content-type': 'application/json' } });
    expect(empty.statusCode).toBe(422);
  });
});

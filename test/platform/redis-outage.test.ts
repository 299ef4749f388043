import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/eventually.js';
import { freePort } from '../helpers/process.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

// A private Redis that the test can stop and start again, to see the service degrade and recover by itself.
describe.runIf(hasRedisServer)('Redis lost at runtime', () => {
  let redis: ChildProcess | undefined;
  let t: TestApp | undefined;
  afterAll(async () => {
    await t?.close();
    redis?.kill('SIGKILL');
  });

  it('reports 503 naming Redis, keeps serving what does not need it, and recovers when Redis returns', async () => {
    const port = await freePort();
    redis = startRedis(port);
    await new Promise((resolve) => setTimeout(resolve, 300));
    t = await buildTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    expect((await t.app.inject({ url: '/health/ready' })).statusCode).toBe(200);

    redis.kill('SIGKILL');
    await eventually(async () => (await t!.app.inject({ url: '/health/ready' })).statusCode === 503, 15_000);
    const down = await t.app.inject({ url: '/health/ready' });
    expect(down.headers['content-type']).toContain('application/problem+json');
    expect(down.json().detail).toContain('redis');
    expect(down.json().checks).toMatchObject({ database: 'ok', redis: 'down' });
    // Rate limiting lives in Redis, but requests still pass while it is away.
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/' })).statusCode).toBe(200);

    redis = startRedis(port);
    await eventually(async () => (await t!.app.inject({ url: '/health/ready' })).statusCode === 200, 15_000);
  });
});

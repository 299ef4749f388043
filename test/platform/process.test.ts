import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startProcess, waitForHttp, type RunningServer } from '../helpers/process.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-process-'));
const running: RunningServer[] = [];
afterAll(() => {
  for (const server of running) server.child.kill('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// Real processes start the embedded database; on a busy machine that takes a while.
describe('the service process', { timeout: 120_000 }, () => {
  it('refuses bad configuration with exit code 2 and the variable named', async () => {
    const server = startProcess(['src/server.ts'], { PORT: 'eighty', DATA_DIR: dataDir });
    running.push(server);
    expect(await server.exited).toBe(2);
    expect(server.output()).toContain('PORT');
  });

  it('refuses to start in production with generated secrets', async () => {
    const server = startProcess(['src/server.ts'], { CDSA_ENV: 'production', DATA_DIR: dataDir, PORT: String(await freePort()) });
    running.push(server);
    expect(await server.exited).toBe(2);
    expect(server.output()).toContain('JWT_SECRET_KEY');
  });

  it('reports a port already in use and exits non-zero', async () => {
    const blocker = net.createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const server = startProcess(['src/server.ts'], { PORT: String(port), DATA_DIR: path.join(dataDir, 'busy') });
      running.push(server);
      expect(await server.exited).toBe(1);
      expect(server.output()).toContain('already in use');
    } finally {
      blocker.close();
    }
  });

  it('serves on the embedded database, shuts down gracefully on SIGTERM (exit 0) and keeps every row across a restart', async () => {
    const port = await freePort();
    const server = startProcess(['src/server.ts'], { PORT: String(port), DATA_DIR: dataDir, REGISTRATION_MODE: 'open' });
    running.push(server);
    await waitForHttp(`${server.url}/health/ready`);
    const ready = (await (await fetch(`${server.url}/health/ready`)).json()) as { database: string; vector_search: string };
    expect(ready).toMatchObject({ database: 'embedded', vector_search: 'available' });
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
    const registered = await fetch(`${server.url}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'persisted', email: 'persisted@example.com', password: 'a sturdy passphrase 42' }),
    });
    expect(registered.status).toBe(201);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    // Start again on the same DATA_DIR: the user (and the generated keys) are still there.
    const again = startProcess(['src/server.ts'], { PORT: String(port), DATA_DIR: dataDir });
    running.push(again);
    await waitForHttp(`${again.url}/health/ready`);
    const login = await fetch(`${again.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'persisted', password: 'a sturdy passphrase 42' }),
    });
    expect(login.status).toBe(200);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('applies migrations from the CLI', async () => {
    const cli = startProcess(['src/cli/index.ts', 'migrate'], { DATA_DIR: dataDir });
    running.push(cli);
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toContain('migrations applied (embedded)');
  });

  it('lists its commands', async () => {
    const cli = startProcess(['src/cli/index.ts', '--help'], {});
    running.push(cli);
    expect(await cli.exited).toBe(0);
    for (const command of ['serve', 'worker', 'migrate']) expect(cli.output()).toContain(command);
  });
});

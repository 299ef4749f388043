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

describe('the service process', () => {
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

  it('serves on the embedded database, then shuts down gracefully on SIGTERM with exit code 0', async () => {
    const port = await freePort();
    const server = startProcess(['src/server.ts'], { PORT: String(port), DATA_DIR: dataDir });
    running.push(server);
    await waitForHttp(`${server.url}/health/ready`);
    const ready = (await (await fetch(`${server.url}/health/ready`)).json()) as { database: string; vector_search: string };
    expect(ready).toMatchObject({ database: 'embedded', vector_search: 'available' });
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
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

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferIO } from '../../src/cli/command-io.js';
import { handleAdminConnection, sendAdminCommand } from '../../src/cli/admin-socket.js';
import { acquireDataDirLock, DataDirBusyError, dataDirPaths, readAdminToken } from '../../src/lib/data-dir-lock.js';
import { describeStartupError } from '../../src/lib/startup-errors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-lock-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let next = 0;
const freshDir = () => {
  const dir = path.join(root, String(next++));
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
};

/** A process that binds the admin socket as a holder would, then dies by SIGKILL: it cleans nothing up. */
async function crashedHolder(dataDir: string): Promise<void> {
  const paths = dataDirPaths(dataDir);
  fs.mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(paths.socket)}, () => console.log('bound'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  fs.writeFileSync(paths.holder, JSON.stringify({ pid: child.pid, role: 'serve', started_at: new Date().toISOString() }));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('DATA_DIR lock', () => {
  it('lets one process hold DATA_DIR; a second is refused with the holder named and what to do', async () => {
    const dir = freshDir();
    const lock = await acquireDataDirLock(dir, 'serve');
    const refused = await acquireDataDirLock(dir, 'serve').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DataDirBusyError);
    expect((refused as DataDirBusyError).holder).toMatchObject({ pid: process.pid, role: 'serve' });
    const { message, exitCode } = describeStartupError(refused);
    expect(exitCode).toBe(1);
    expect(message).toContain(`pid ${process.pid}`);
    expect(message).toMatch(/stop that server first, use another DATA_DIR, or set DATABASE_URL/);
    await lock.release();
    // Released: the next process takes it.
    const again = await acquireDataDirLock(dir, 'cli');
    await again.release();
  });

  it('keeps the socket and its token owner-only', async () => {
    const dir = freshDir();
    const lock = await acquireDataDirLock(dir, 'serve');
    const paths = dataDirPaths(dir);
    expect(fs.statSync(paths.runDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(paths.socket).mode & 0o777).toBe(0o600);
    expect(fs.statSync(paths.token).mode & 0o777).toBe(0o600);
    expect(readAdminToken(dir)).toBe(lock.token);
    await lock.release();
    expect(fs.existsSync(paths.socket)).toBe(false);
  });

  it('does not lock people out after a crash: a socket nobody accepts on is taken over', async () => {
    const dir = freshDir();
    await crashedHolder(dir);
    expect(fs.existsSync(dataDirPaths(dir).socket)).toBe(true);
    const lock = await acquireDataDirLock(dir, 'serve');
    await expect(acquireDataDirLock(dir, 'serve')).rejects.toBeInstanceOf(DataDirBusyError);
    await lock.release();
  });

  it('gives a stale DATA_DIR to exactly one of two processes starting together', async () => {
    const dir = freshDir();
    await crashedHolder(dir);
    const results = await Promise.allSettled([acquireDataDirLock(dir, 'serve'), acquireDataDirLock(dir, 'serve'), acquireDataDirLock(dir, 'cli')]);
    const won = results.filter((result) => result.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(results.filter((result) => result.status === 'rejected').every((result) => (result as PromiseRejectedResult).reason instanceof DataDirBusyError)).toBe(true);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireDataDirLock>>>).value.release();
  });

  it('serves commands on the admin socket only with the token, queued until the holder is ready', async () => {
    const dir = freshDir();
    const lock = await acquireDataDirLock(dir, 'serve');
    const paths = dataDirPaths(dir);
    // Sent before the holder is ready: it waits instead of failing.
    const io = bufferIO();
    const pending = sendAdminCommand(paths.socket, { token: lock.token, command: 'echo', args: { text: 'hi' } }, io);
    lock.onConnection((socket) => {
      void handleAdminConnection(socket, {
        token: lock.token,
        run: async (command, args, commandIO) => {
          await commandIO.out(`${command}:${(args as { text: string }).text}\n`);
          await commandIO.err('to stderr\n');
          await commandIO.result({ done: true });
          return 3;
        },
        onError: () => undefined,
      });
    });
    expect(await pending).toBe(3);
    expect(io.stdout.join('')).toBe('echo:hi\n');
    expect(io.stderr.join('')).toBe('to stderr\n');
    expect(io.results).toEqual([{ done: true }]);

    const intruder = bufferIO();
    expect(await sendAdminCommand(paths.socket, { token: 'guessed', command: 'echo', args: { text: 'x' } }, intruder)).toBe(77);
    expect(intruder.stdout).toEqual([]);
    await lock.release();
  });
});

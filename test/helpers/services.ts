import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.js';

const run = promisify(execFile);

/**
 * Private database and Redis servers for fault tests: a PostgreSQL cluster of its own (initdb into a temp dir, its
 * own port) and a redis-server on its own port, so a test can restart or kill them without touching the machine's
 * services or anybody else's tests.
 */
export const POSTGRES_BIN = process.env.CDSA_TEST_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';

/** PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user when we are root. */
const asPostgres = process.getuid?.() === 0;

export const hasPostgresBinaries = fs.existsSync(path.join(POSTGRES_BIN, 'initdb')) && fs.existsSync(path.join(POSTGRES_BIN, 'pg_ctl'));
export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function pgCommand(binary: string, args: string[]): Promise<void> {
  const file = path.join(POSTGRES_BIN, binary);
  if (asPostgres) await run('runuser', ['-u', 'postgres', '--', file, ...args]);
  else await run(file, args);
}

export interface PostgresCluster {
  port: number;
  /** The `postgres` database of the cluster (for createPostgresDatabase). */
  url: string;
  /** `pg_ctl restart -m fast`: every connection is terminated with 57P01, then the server comes back. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m immediate`: the server is gone at once (connections reset). */
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** A new PostgreSQL cluster in a temp dir (fsync off: nothing here needs to survive the machine). */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-pg-'));
  const dataDir = path.join(dir, 'data');
  if (asPostgres) await run('chown', ['-R', 'postgres:postgres', dir]);
  await pgCommand('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const options = [`-p ${port}`, `-k ${dir}`, "-c listen_addresses=127.0.0.1", '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'].join(' ');
  const logFile = path.join(dir, 'server.log');
  const start = () => pgCommand('pg_ctl', ['-D', dataDir, '-o', options, '-l', logFile, '-w', '-t', '60', 'start']);
  await start();
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: () => pgCommand('pg_ctl', ['-D', dataDir, '-o', options, '-l', logFile, '-m', 'fast', '-w', '-t', '60', 'restart']),
    stop: () => pgCommand('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']),
    start,
    async destroy() {
      await pgCommand('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisServer {
  port: number;
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const started = Date.now();
    while (!(await accepts(port))) {
      if (Date.now() - started > 10_000) throw new Error('redis-server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async () => {
    const stopping = child;
    child = undefined;
    if (!stopping || stopping.exitCode !== null) return;
    const exited = new Promise((resolve) => stopping.once('exit', resolve));
    stopping.kill('SIGKILL');
    await exited;
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}`, start, stop, destroy: stop };
}

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../config.js';

/**
 * The embedded database is single-process: two processes opening DATA_DIR/pglite corrupt it. The process that owns
 * DATA_DIR proves it by listening on DATA_DIR/run/admin.sock. The kernel arbitrates: binding fails while the socket
 * file exists, and a process that died (even by kill -9) stops accepting at once, so a connection refused means the
 * lock is stale and can be taken over. The same socket carries the CLI's commands to a running server (admin-socket).
 */

export type LockHolderRole = 'serve' | 'cli';

export interface LockHolder {
  pid: number;
  role: LockHolderRole;
  started_at: string;
}

export interface DataDirPaths {
  runDir: string;
  socket: string;
  token: string;
  holder: string;
  takeover: string;
}

export function dataDirPaths(dataDir: string): DataDirPaths {
  const runDir = path.join(dataDir, 'run');
  return {
    runDir,
    socket: path.join(runDir, 'admin.sock'),
    token: path.join(runDir, 'admin.token'),
    holder: path.join(runDir, 'holder.json'),
    takeover: path.join(runDir, 'takeover.lock'),
  };
}

/** Another live process owns DATA_DIR. */
export class DataDirBusyError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder | undefined,
  ) {
    const who = holder ? `${holder.role === 'serve' ? 'a running CDSA server' : 'a cdsa command'} (pid ${holder.pid})` : 'another CDSA process';
    super(`DATA_DIR ${dataDir} is in use by ${who}`);
    this.name = 'DataDirBusyError';
  }
}

export type ConnectionHandler = (socket: net.Socket) => void;

export interface DataDirLock {
  readonly paths: DataDirPaths;
  /** The secret a client must present on the admin socket (also in paths.token, owner-only). */
  readonly token: string;
  /** Answers connections on the admin socket; until it is called they wait (a server that is still starting). */
  onConnection(handler: ConnectionHandler): void;
  /** Stops listening and removes the socket and token; the next process may take DATA_DIR. */
  release(): Promise<void>;
}

// sockaddr_un.sun_path is 108 bytes on Linux and 104 on macOS, terminator included.
const MAX_SOCKET_PATH = 103;
const TAKEOVER_STALE_MS = 10_000;

function listen(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(socketPath);
  });
}

/** Whether a live process accepts connections on the socket (ECONNREFUSED/ENOENT: nobody does). */
export function socketIsLive(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      // Accepting but silent is still alive (a busy event loop); only a refusal is a dead owner.
      resolve(true);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(false);
      else reject(error);
    });
  });
}

export function readLockHolder(dataDir: string): LockHolder | undefined {
  try {
    return JSON.parse(fs.readFileSync(dataDirPaths(dataDir).holder, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

/**
 * Serialises the removal of a stale socket, so that two processes starting together after a crash cannot each remove
 * the other's fresh socket. A mutex left by a process that died inside this few-millisecond section expires.
 */
async function withTakeoverMutex<T>(paths: DataDirPaths, task: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      fs.mkdirSync(paths.takeover);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = Date.now() - (fs.statSync(paths.takeover, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > TAKEOVER_STALE_MS) fs.rmSync(paths.takeover, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  try {
    return await task();
  } finally {
    fs.rmSync(paths.takeover, { recursive: true, force: true });
  }
}

function prepareRunDir(dataDir: string, paths: DataDirPaths): void {
  if (Buffer.byteLength(paths.socket) > MAX_SOCKET_PATH) {
    throw new ConfigError('DATA_DIR', `${dataDir} is too long a path for the admin socket (${paths.socket}); use a shorter DATA_DIR`);
  }
  fs.mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  // Only the owner may reach the socket and the token: file permissions are the admin socket's first authentication.
  fs.chmodSync(paths.runDir, 0o700);
}

/**
 * Takes DATA_DIR for this process or throws DataDirBusyError naming the holder. Take it before anything in DATA_DIR
 * is read or written (development secrets, the embedded database).
 */
export async function acquireDataDirLock(dataDir: string, role: LockHolderRole): Promise<DataDirLock> {
  const paths = dataDirPaths(dataDir);
  prepareRunDir(dataDir, paths);
  let handler: ConnectionHandler | undefined;
  const waiting: net.Socket[] = [];
  const server = net.createServer((socket) => {
    if (handler) handler(socket);
    else waiting.push(socket);
  });

  const bind = async (): Promise<boolean> => {
    try {
      await listen(server, paths.socket);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') return false;
      throw error;
    }
  };

  let bound = await bind();
  if (!bound) {
    bound = await withTakeoverMutex(paths, async () => {
      if (await socketIsLive(paths.socket)) return false;
      // Nobody accepts on it: the previous owner died without cleaning up.
      fs.rmSync(paths.socket, { force: true });
      return bind();
    });
  }
  if (!bound) throw new DataDirBusyError(dataDir, readLockHolder(dataDir));

  fs.chmodSync(paths.socket, 0o600);
  const token = randomBytes(32).toString('base64url');
  fs.writeFileSync(paths.token, token, { mode: 0o600 });
  fs.chmodSync(paths.token, 0o600);
  const holder: LockHolder = { pid: process.pid, role, started_at: new Date().toISOString() };
  fs.writeFileSync(paths.holder, `${JSON.stringify(holder)}\n`, { mode: 0o600 });

  let released = false;
  return {
    paths,
    token,
    onConnection(next) {
      handler = next;
      for (const socket of waiting.splice(0)) next(socket);
    },
    async release() {
      if (released) return;
      released = true;
      for (const socket of waiting.splice(0)) socket.destroy();
      // Our socket file is still there until we remove it, so nobody else can have bound in between.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(paths.socket, { force: true });
      fs.rmSync(paths.token, { force: true });
      fs.rmSync(paths.holder, { force: true });
    },
  };
}

/** The admin token of the process holding DATA_DIR, for a client on the same machine. */
export function readAdminToken(dataDir: string): string {
  const file = dataDirPaths(dataDir).token;
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      'DATA_DIR',
      code === 'EACCES'
        ? `cannot read ${file}: run this command as the user that runs the server`
        : `cannot read ${file} (${code ?? 'error'})`,
    );
  }
}

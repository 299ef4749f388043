import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { CommandIO } from './command-io.js';

/**
 * The admin socket's protocol: newline-delimited JSON over DATA_DIR/run/admin.sock. The client sends one request
 * line, `{"token", "command", "args"}`; the holder of DATA_DIR answers with any number of `{"out": text}`,
 * `{"err": text}` and `{"result": value}` lines, then `{"exit": code}`. The socket's directory and file are
 * owner-only and the token (DATA_DIR/run/admin.token, owner-only) must match: only the account that runs the server
 * can send it commands.
 */

export interface AdminRequest {
  token: string;
  command: string;
  args: unknown;
}

type AdminMessage = { out: string } | { err: string } | { result: unknown } | { exit: number };

/** Exit code of a command the holder could not run now (sysexits EX_TEMPFAIL). */
export const EXIT_TEMPFAIL = 75;
// Requests carry at most a password and a few checkpoint files.
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function tokensMatch(presented: unknown, expected: string): boolean {
  return typeof presented === 'string' && timingSafeEqual(digest(presented), digest(expected));
}

/** Reads the first line of a connection (the request), bounded in size. */
function readRequestLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const end = buffered.indexOf('\n');
      if (end >= 0) {
        cleanup();
        resolve(buffered.slice(0, end));
      } else if (buffered.length > MAX_REQUEST_BYTES) {
        cleanup();
        reject(new Error('request too large'));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('connection closed before a request was sent'));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
  });
}

function socketIO(socket: net.Socket): CommandIO & { exit(code: number): Promise<void> } {
  const send = (message: AdminMessage) =>
    new Promise<void>((resolve, reject) => {
      if (socket.destroyed) {
        reject(new Error('the client went away'));
        return;
      }
      socket.write(`${JSON.stringify(message)}\n`, (error) => (error ? reject(error) : resolve()));
    });
  return {
    out: (text) => send({ out: text }),
    err: (text) => send({ err: text }),
    result: (value) => send({ result: value }),
    async exit(code) {
      await send({ exit: code });
      socket.end();
    },
  };
}

export interface AdminConnectionOptions {
  token: string;
  run(command: string, args: unknown, io: CommandIO): Promise<number>;
  onError(error: unknown, command: string | undefined): void;
}

/** Serves one connection: authenticate, run the command, stream its output back. */
export async function handleAdminConnection(socket: net.Socket, options: AdminConnectionOptions): Promise<void> {
  const io = socketIO(socket);
  let request: Partial<AdminRequest>;
  try {
    request = JSON.parse(await readRequestLine(socket)) as Partial<AdminRequest>;
  } catch {
    socket.destroy();
    return;
  }
  if (!tokensMatch(request.token, options.token)) {
    await io.err('cdsa: the admin token does not match DATA_DIR/run/admin.token\n').catch(() => undefined);
    await io.exit(77).catch(() => undefined);
    return;
  }
  const command = typeof request.command === 'string' ? request.command : '';
  try {
    const code = await options.run(command, request.args, io);
    await io.exit(code);
  } catch (error) {
    options.onError(error, command);
    await io.err(`cdsa: ${command} failed: ${(error as Error).message}\n`).catch(() => undefined);
    await io.exit(1).catch(() => undefined);
  }
}

/** Answers every connection with "busy" (a one-off command holds DATA_DIR; it serves nobody else). */
export async function refuseAdminConnection(socket: net.Socket, message: string): Promise<void> {
  const io = socketIO(socket);
  await readRequestLine(socket).catch(() => undefined);
  await io.err(`${message}\n`).catch(() => undefined);
  await io.exit(EXIT_TEMPFAIL).catch(() => socket.destroy());
}

/** Sends a command to the process holding DATA_DIR and relays its output; resolves with its exit code. */
export function sendAdminCommand(socketPath: string, request: AdminRequest, io: CommandIO): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffered = '';
    let exitCode: number | undefined;
    // Output is relayed in order; a slow stdout pauses the socket (and so the server's writes).
    let chain = Promise.resolve();
    const relay = (message: AdminMessage) => {
      if ('out' in message) return io.out(message.out);
      if ('err' in message) return io.err(message.err);
      if ('result' in message) return io.result(message.result);
      exitCode = message.exit;
      return Promise.resolve();
    };
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let end: number;
      const messages: AdminMessage[] = [];
      while ((end = buffered.indexOf('\n')) >= 0) {
        messages.push(JSON.parse(buffered.slice(0, end)) as AdminMessage);
        buffered = buffered.slice(end + 1);
      }
      if (messages.length === 0) return;
      socket.pause();
      chain = chain
        .then(async () => {
          for (const message of messages) await relay(message);
        })
        .finally(() => socket.resume());
    });
    socket.on('error', reject);
    socket.on('close', () => {
      void chain.then(
        () => (exitCode === undefined ? reject(new Error('the server closed the admin connection before the command finished')) : resolve(exitCode)),
        reject,
      );
    });
  });
}

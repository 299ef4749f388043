import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface SseEvent<D = unknown> {
  id?: string;
  event: string;
  data: D;
}

/** A text/event-stream response read as it arrives; the clients built on it add their own controls. */
export interface SseReader<D = unknown> {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The raw text received so far (the whole body when the server answered with something other than a stream). */
  text(): string;
  events: SseEvent<D>[];
  /** Resolves when `predicate` holds over the events received (checked on every chunk); rejects after the timeout. */
  until(predicate: (events: SseEvent<D>[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
}

export function baseUrl(app: FastifyInstance): string {
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

function parseBlock<D>(block: string): SseEvent<D> | undefined {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return undefined;
  return { id, event, data: JSON.parse(data.join('\n')) as D };
}

export function readSse<D = unknown>(response: http.IncomingMessage): SseReader<D> {
  let raw = '';
  let pending = '';
  const events: SseEvent<D>[] = [];
  const waiters = new Set<() => void>();
  let done = false;
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => {
    resolveEnded = resolve;
  });
  response.setEncoding('utf8');
  response.on('data', (chunk: string) => {
    raw += chunk;
    pending += chunk;
    let boundary = pending.indexOf('\n\n');
    while (boundary >= 0) {
      const parsed = parseBlock<D>(pending.slice(0, boundary));
      if (parsed) events.push(parsed);
      pending = pending.slice(boundary + 2);
      boundary = pending.indexOf('\n\n');
    }
    for (const waiter of [...waiters]) waiter();
  });
  const finish = () => {
    done = true;
    resolveEnded();
    for (const waiter of [...waiters]) waiter();
  };
  response.on('end', finish);
  response.on('close', finish);
  response.on('error', finish);
  return {
    status: response.statusCode ?? 0,
    headers: response.headers,
    text: () => raw,
    events,
    until(predicate, timeoutMs = 10_000) {
      if (predicate(events)) return Promise.resolve();
      return new Promise<void>((resolveWait, rejectWait) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          rejectWait(new Error(`timed out waiting for events; received: ${JSON.stringify(events)}`));
        }, timeoutMs);
        const check = () => {
          if (predicate(events)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolveWait();
          } else if (done) {
            clearTimeout(timer);
            waiters.delete(check);
            rejectWait(new Error(`stream ended; received: ${JSON.stringify(events)}`));
          }
        };
        waiters.add(check);
      });
    },
    ended,
  };
}

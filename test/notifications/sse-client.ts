import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface SseEvent {
  id?: string;
  event: string;
  data: unknown;
}

/** A real HTTP client reading a text/event-stream as it arrives (what EventSource does, minus reconnects). */
export interface SseConnection {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The raw text received so far. */
  text(): string;
  events: SseEvent[];
  notifications(): { seq: number; [key: string]: unknown }[];
  /** Resolves when `predicate` holds over the events received (checked on every chunk); rejects after the timeout. */
  until(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** Stops reading (a slow client); the server's writes back up. */
  pause(): void;
  resume(): void;
  close(): void;
}

export function baseUrl(app: FastifyInstance): string {
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

function parseBlock(block: string): SseEvent | undefined {
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
  return { id, event, data: JSON.parse(data.join('\n')) as unknown };
}

export function openSse(url: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, agent }, (response) => {
      let raw = '';
      let pending = '';
      const events: SseEvent[] = [];
      const waiters = new Set<() => void>();
      let resolveEnded!: () => void;
      const ended = new Promise<void>((done) => {
        resolveEnded = done;
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        raw += chunk;
        pending += chunk;
        let boundary = pending.indexOf('\n\n');
        while (boundary >= 0) {
          const parsed = parseBlock(pending.slice(0, boundary));
          if (parsed) events.push(parsed);
          pending = pending.slice(boundary + 2);
          boundary = pending.indexOf('\n\n');
        }
        for (const waiter of [...waiters]) waiter();
      });
      let done = false;
      const finish = () => {
        done = true;
        resolveEnded();
        for (const waiter of [...waiters]) waiter();
      };
      response.on('end', finish);
      response.on('close', finish);
      response.on('error', finish);
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        text: () => raw,
        events,
        notifications: () =>
          events.filter((event) => event.event === 'notification').map((event) => event.data as { seq: number; [key: string]: unknown }),
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
        pause() {
          response.pause();
        },
        resume() {
          response.resume();
        },
        close() {
          request.destroy();
        },
      });
    });
    request.on('error', reject);
  });
}

/** Waits until `predicate` holds, checking every few milliseconds; for state that has no event to wait on. */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

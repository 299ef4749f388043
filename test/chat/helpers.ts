import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { queryRows } from '../../src/db/client.js';
import type { TestApp } from '../helpers/app.js';

export interface ChatEvent {
  event: string;
  data: Record<string, unknown>;
}

/** A POST that answers with a text/event-stream, read as it arrives (what a browser's fetch reader does). */
export interface ChatStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: ChatEvent[];
  /** The body when the server answered with something other than a stream (a problem). */
  body(): string;
  until(predicate: (events: ChatEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server has ended the response. */
  ended: Promise<void>;
  /** Closes the connection from the client's side. */
  close(): void;
}

export function baseUrl(app: FastifyInstance): string {
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

function parseBlock(block: string): ChatEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return undefined;
  return { event, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
}

export function postStream(
  app: FastifyInstance,
  path: string,
  body: unknown,
  headers: Record<string, string>,
  agent?: http.Agent,
): Promise<ChatStream> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${baseUrl(app)}${path}`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(payload), ...headers },
      },
      (response) => {
        let raw = '';
        let pending = '';
        const events: ChatEvent[] = [];
        const waiters = new Set<() => void>();
        let done = false;
        let resolveEnded!: () => void;
        const ended = new Promise<void>((r) => {
          resolveEnded = r;
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
          events,
          body: () => raw,
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
          close() {
            request.destroy();
          },
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

/** Sends a chat message and waits for the whole stream. */
export async function chat(
  t: TestApp,
  headers: Record<string, string>,
  body: Record<string, unknown>,
  path = '/api/v1/chat/stream',
): Promise<ChatStream> {
  const stream = await postStream(t.app, path, body, headers);
  await stream.ended;
  return stream;
}

export const names = (events: ChatEvent[]): string[] => events.map((e) => e.event);
export const tokensOf = (events: ChatEvent[]): string =>
  events.filter((e) => e.event === 'token').map((e) => String(e.data.delta)).join('');
export const eventOf = (events: ChatEvent[], name: string): Record<string, unknown> => {
  const found = events.find((e) => e.event === name);
  if (!found) throw new Error(`no ${name} event in ${JSON.stringify(events)}`);
  return found.data;
};

export interface StoredMessage {
  id: string;
  session_id: string;
  role: string;
  content: string;
  tool_calls: string | null;
  status: string;
  model: string | null;
  usage: { input_tokens: number | null; output_tokens: number | null } | null;
}

export async function storedMessages(t: TestApp, sessionId: string): Promise<StoredMessage[]> {
  return queryRows<StoredMessage>(
    t.app.infra.database.db,
    sql`SELECT id, session_id, role, content, tool_calls, status, model, usage FROM chat_messages WHERE session_id = ${sessionId} ORDER BY seq`,
  );
}

export async function auditRows(t: TestApp, eventType: string): Promise<Array<{ user_id: string | null; resource_id: string | null; details: Record<string, unknown> }>> {
  return queryRows(
    t.app.infra.database.db,
    sql`SELECT user_id, resource_id, details FROM audit_events WHERE event_type = ${eventType} ORDER BY seq`,
  );
}

/** Waits until `predicate` holds, checking every few milliseconds (for state a stream no longer reports). */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The environment that points every provider at the mock. `OPENAI_LOCAL` decides whether OpenAI counts as cloud. */
export function mockEnv(url: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    OLLAMA_BASE_URL: url,
    OPENAI_BASE_URL: `${url}/v1`,
    OPENAI_API_KEY: 'sk-test-chat-0123456789abcdef',
    ANTHROPIC_BASE_URL: url,
    ANTHROPIC_API_KEY: 'anthropic-test-key-0123456789',
    LLM_DEFAULT_MODEL: 'openai/mock-model',
    LLM_REQUEST_TIMEOUT_MS: '5000',
    CHAT_RATE_LIMIT_REQUESTS: '1000',
    ...overrides,
  };
}

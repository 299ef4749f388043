import http from 'node:http';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { queryRows } from '../../src/db/client.js';
import type { TestApp } from '../helpers/app.js';
import { baseUrl, readSse, type SseEvent, type SseReader } from '../helpers/sse.js';

export type ChatEvent = SseEvent<Record<string, unknown>>;

/** A POST that answers with a text/event-stream, read as it arrives (what a browser's fetch reader does). */
export interface ChatStream extends SseReader<Record<string, unknown>> {
  /** Closes the connection from the client's side. */
  close(): void;
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
        resolve({
          ...readSse<Record<string, unknown>>(response),
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

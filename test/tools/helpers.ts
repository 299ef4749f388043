import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../src/db/client.js';
import type { TestApp } from '../helpers/app.js';
import type { TestUser } from '../helpers/users.js';

/** One request a sink received. */
export interface SinkCall {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type SinkResponder = (call: SinkCall, response: ServerResponse) => unknown;

/**
 * A real HTTP server standing for the outside world a tool changes: it counts every request, so a test can assert
 * that a side effect happened exactly as often as it should (zero before approval, one after).
 */
export interface Sink {
  readonly url: string;
  /** `127.0.0.1:<port>`, for TOOL_HTTP_ALLOWLIST. */
  readonly hostPort: string;
  readonly calls: SinkCall[];
  respond(responder: SinkResponder): void;
  close(): Promise<void>;
}

const jsonOk: SinkResponder = (_call, response) => {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ ok: true }));
};

export async function startSink(): Promise<Sink> {
  const calls: SinkCall[] = [];
  let responder: SinkResponder = jsonOk;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const call: SinkCall = { method: request.method ?? '', path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') };
      calls.push(call);
      Promise.resolve(responder(call, response)).catch(() => response.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    calls,
    respond(next) {
      responder = next;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits for a condition driven by background work (a job, another instance); fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function createTool(t: TestApp, admin: TestUser, body: Record<string, unknown>): Promise<{ id: string; name: string; version: number }> {
  const response = await t.app.inject({ method: 'POST', url: '/api/v1/tools', headers: admin.headers, payload: body });
  if (response.statusCode !== 201) throw new Error(`creating tool failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

/** A webhook tool that needs approval, pointed at the sink. */
export function gatedWebhook(sink: Sink, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    description: 'Transfers money (a side effect)',
    input_schema: {
      type: 'object',
      additionalProperties: false,
      required: ['amount', 'to'],
      properties: { amount: { type: 'number' }, to: { type: 'string' } },
    },
    requires_approval: true,
    implementation: { type: 'webhook', url: `${sink.url}/hook` },
    ...extra,
  };
}

export async function execute(t: TestApp, user: TestUser, tool: string, args: Record<string, unknown>) {
  return t.app.inject({ method: 'POST', url: `/api/v1/tools/${tool}/execute`, headers: user.headers, payload: { args } });
}

export async function decide(t: TestApp, user: TestUser, approvalId: string, decision: 'APPROVED' | 'REJECTED', reason?: string) {
  return t.app.inject({
    method: 'POST',
    url: `/api/v1/approvals/${approvalId}/decide`,
    headers: user.headers,
    payload: reason === undefined ? { decision } : { decision, reason },
  });
}

export interface ExecutionRow {
  id: string;
  status: string;
  error: string | null;
}

export async function executionRow(t: TestApp, id: string): Promise<ExecutionRow | undefined> {
  const [row] = await queryRows<ExecutionRow>(t.app.infra.database.db, sql`SELECT id, status, error FROM tool_executions WHERE id = ${id}`);
  return row;
}

export async function waitForExecution(t: TestApp, id: string, statuses: string[] = ['completed', 'failed']): Promise<ExecutionRow> {
  return waitFor(async () => {
    const row = await executionRow(t, id);
    return row && statuses.includes(row.status) ? row : undefined;
  }, `execution ${id} to reach ${statuses.join('/')}`);
}

export interface NotificationRow {
  user_id: string;
  type: string;
  priority: string;
  data: Record<string, unknown>;
}

export async function notificationsOf(t: TestApp, type: string): Promise<NotificationRow[]> {
  return queryRows<NotificationRow>(
    t.app.infra.database.db,
    sql`SELECT user_id, type, priority, data FROM notifications WHERE type = ${type} ORDER BY created_at, seq`,
  );
}

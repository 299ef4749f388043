import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../../test/helpers/eventually.js';
import { createSseRegistry, type SseRegistry, type SseStream } from './sse.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(options: Parameters<typeof createSseRegistry>[0], onStream: (stream: SseStream) => void): Promise<{ url: string; registry: SseRegistry }> {
  const registry = createSseRegistry(options);
  app = Fastify();
  app.get('/stream', (request, reply) => {
    onStream(registry.open(request, reply));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/stream`, registry };
}

function connect(url: string, headers: Record<string, string> = {}): Promise<{ response: http.IncomingMessage; text: () => string; request: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    let body = '';
    const request = http.get(url, { headers }, (response) => {
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      resolve({ response, text: () => body, request });
    });
    request.on('error', reject);
  });
}

describe('SSE helper', () => {
  it('sends retry, events with ids, heartbeats, and passes Last-Event-ID through', async () => {
    let stream: SseStream | undefined;
    const { url } = await serve({ heartbeatMs: 50, retryMs: 1234 }, (s) => {
      stream = s;
    });
    const client = await connect(url, { 'last-event-id': '41' });
    expect(client.response.headers['content-type']).toContain('text/event-stream');
    expect(client.response.headers['x-accel-buffering']).toBe('no');
    await eventually(() => stream !== undefined, 5_000);
    expect(stream!.lastEventId).toBe('41');
    stream!.send('notification', { hello: 'world' }, 42);
    await eventually(() => client.text().includes(': ping'), 5_000);
    const text = client.text();
    expect(text.startsWith('retry: 1234\n\n')).toBe(true);
    expect(text).toContain('id: 42\nevent: notification\ndata: {"hello":"world"}\n\n');
    client.request.destroy();
  });

  it('cleans up when the client disconnects', async () => {
    let stream: SseStream | undefined;
    let closed = false;
    const { url, registry } = await serve({}, (s) => {
      stream = s;
      s.onClose(() => {
        closed = true;
      });
    });
    const client = await connect(url);
    await eventually(() => registry.size() === 1, 5_000);
    client.request.destroy();
    await eventually(() => closed, 5_000);
    expect(registry.size()).toBe(0);
    expect(stream!.signal.aborted).toBe(true);
    expect(stream!.send('late', {})).toBe(false);
  });

  it('ends every stream with a final event on shutdown', async () => {
    const { url, registry } = await serve({}, () => undefined);
    const client = await connect(url);
    await eventually(() => registry.size() === 1, 5_000);
    const ended = new Promise<void>((resolve) => client.response.on('end', () => resolve()));
    registry.closeAll();
    await ended;
    expect(client.text()).toContain('event: shutdown\n');
    expect(registry.size()).toBe(0);
  });

  it('drops a client that stops reading instead of buffering without bound', async () => {
    let stream: SseStream | undefined;
    const { url } = await serve({ maxBufferedBytes: 64 * 1024 }, (s) => {
      stream = s;
    });
    const client = await connect(url);
    client.response.pause();
    await eventually(() => stream !== undefined, 5_000);
    const payload = { data: 'x'.repeat(16 * 1024) };
    let sent = 0;
    while (stream!.send('bulk', payload) && sent < 10_000) sent += 1;
    expect(stream!.closed).toBe(true);
    expect(sent).toBeLessThan(10_000);
    client.request.destroy();
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFetch } from './http-fetch.js';

let server: http.Server;
let base: string;
/** Requests whose connection closed before the handler finished writing. */
const closedEarly: string[] = [];
/** Requests answered by /closes-reused (each on a connection of its own). */
const closesReused: string[] = [];

beforeAll(async () => {
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = request.url ?? '/';
      if (url === '/echo') {
        response.writeHead(201, { 'content-type': 'application/json', 'x-multi': ['a', 'b'] });
        response.end(JSON.stringify({ method: request.method, body: Buffer.concat(chunks).toString(), auth: request.headers.authorization ?? null }));
      } else if (url === '/gzip') {
        response.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain' });
        response.end(zlib.gzipSync('compressed answer'));
      } else if (url === '/empty') {
        response.writeHead(204);
        response.end();
      } else if (url === '/redirect') {
        response.writeHead(307, { location: '/echo' });
        response.end();
      } else if (url === '/slow-stream') {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write('data: first\n\n');
        const timer = setInterval(() => response.write('data: more\n\n'), 20);
        response.on('close', () => {
          clearInterval(timer);
          if (!response.writableEnded) closedEarly.push(url);
        });
      } else if (url === '/closes-reused') {
        // Answers the first request of each connection and resets the connection on the next one, as a server does
        // whose idle timeout closes a kept-alive connection just as the client reuses it.
        const socket = request.socket as typeof request.socket & { answered?: boolean };
        if (socket.answered) {
          socket.destroy();
          return;
        }
        socket.answered = true;
        closesReused.push(request.method ?? '');
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('fresh connection');
      } else if (url === '/never') {
        // Holds the request until the client gives up.
        response.on('close', () => closedEarly.push(url));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('the providers’ fetch', () => {
  it('sends a request once more on a new connection when the kept-alive one it reused was reset before any answer', async () => {
    const first = await httpFetch(`${base}/closes-reused`, { method: 'POST', body: '{}' });
    expect(await first.text()).toBe('fresh connection');
    // The same kept-alive connection is reused and reset; the request goes again, on a new one.
    const second = await httpFetch(`${base}/closes-reused`, { method: 'POST', body: '{}' });
    expect(second.status).toBe(200);
    expect(await second.text()).toBe('fresh connection');
    expect(closesReused).toEqual(['POST', 'POST']);
  });

  it('sends method, headers and body, and returns status, headers and body like fetch', async () => {
    const response = await httpFetch(`${base}/echo`, { method: 'POST', headers: { Authorization: 'Bearer k', 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-multi')).toBe('a, b');
    expect(await response.json()).toEqual({ method: 'POST', body: '{"a":1}', auth: 'Bearer k' });
  });

  it('decompresses, answers bodiless statuses without a body, and follows redirects', async () => {
    expect(await (await httpFetch(`${base}/gzip`)).text()).toBe('compressed answer');
    const empty = await httpFetch(`${base}/empty`);
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
    const redirected = await httpFetch(`${base}/redirect`, { method: 'POST', body: 'again' });
    expect(redirected.status).toBe(201);
    expect(await redirected.json()).toMatchObject({ method: 'POST', body: 'again' });
  });

  it('reports an unreachable server as fetch does: TypeError "fetch failed" with the cause', async () => {
    const idle = http.createServer();
    await new Promise<void>((resolve) => idle.listen(0, '127.0.0.1', resolve));
    const port = (idle.address() as AddressInfo).port;
    await new Promise<void>((resolve) => idle.close(() => resolve()));
    const error = (await httpFetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)) as TypeError & { cause?: { code?: string } };
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe('fetch failed');
    expect(error.cause?.code).toBe('ECONNREFUSED');
  });

  it('rejects with the abort reason and closes the connection when aborted while waiting', async () => {
    const controller = new AbortController();
    const pending = httpFetch(`${base}/never`, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const reason = new Error('gave up');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect.poll(() => closedEarly.includes('/never')).toBe(true);
    const already = AbortSignal.abort();
    await expect(httpFetch(`${base}/echo`, { signal: already })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('closes the connection when the reader cancels the body, or the signal aborts mid-stream', async () => {
    const first = await httpFetch(`${base}/slow-stream`);
    const reader = first.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('first');
    await reader.cancel();
    await expect.poll(() => closedEarly.filter((url) => url === '/slow-stream').length).toBe(1);

    const controller = new AbortController();
    const second = await httpFetch(`${base}/slow-stream`, { signal: controller.signal });
    const streaming = second.body!.getReader();
    await streaming.read();
    controller.abort();
    await expect(
      (async () => {
        for (;;) if ((await streaming.read()).done) return;
      })(),
    ).rejects.toBeDefined();
    await expect.poll(() => closedEarly.filter((url) => url === '/slow-stream').length).toBe(2);
  });
});

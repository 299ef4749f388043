import type { FastifyReply, FastifyRequest } from 'fastify';

export interface SseOptions {
  /** Client reconnect delay announced with `retry:`. */
  retryMs?: number;
  /** A `: ping` comment at least this often keeps proxies from closing an idle stream. */
  heartbeatMs?: number;
  /** A client this far behind is dropped; it replays what it missed when it reconnects. */
  maxBufferedBytes?: number;
  /**
   * Called instead of closing the stream when the server shuts down (also at once when the stream opens after the
   * shutdown began): the owner ends it with its own last event. Without it, the stream ends with `shutdown`.
   */
  onShutdown?: () => void;
}

export interface SseStream {
  readonly id: string;
  /** The incoming `Last-Event-ID` header, if any (raw; the caller validates it). */
  readonly lastEventId: string | undefined;
  readonly closed: boolean;
  /** Writes one event; returns false when the stream is closed (or was just dropped for being too slow). */
  send(event: string, data: unknown, id?: string | number): boolean;
  /** The same, with `data` already serialised as JSON (by a caller that writes one payload to many streams). */
  sendJson(event: string, json: string, id?: string | number): boolean;
  comment(text: string): boolean;
  /** A message with no event name, only `data:` (the OpenAI streaming format); `json` already serialised. */
  sendData(json: string): boolean;
  /** Ends the stream, optionally with a last event. */
  close(final?: { event: string; data: unknown }): void;
  onClose(listener: () => void): void;
  readonly signal: AbortSignal;
}

export interface SseRegistry {
  open(request: FastifyRequest, reply: FastifyReply, options?: SseOptions): SseStream;
  /**
   * Graceful shutdown: every open stream, and any opened from now on, is ended, by its owner's `onShutdown` or with a
   * `shutdown` event.
   */
  closeAll(): void;
  /** Ends whatever is still open with a `shutdown` event (the end of the grace period). */
  closeRemaining(): void;
  size(): number;
}

let streamCounter = 0;

/**
 * Server-sent events on the raw response: Fastify hands the socket over (hijack) so nothing buffers between our
 * writes and the client, which matters for token streaming.
 */
export function createSseRegistry(defaults: SseOptions = {}): SseRegistry {
  const streams = new Set<SseStream>();
  const shutdownHandlers = new Map<SseStream, () => void>();
  let shuttingDown = false;
  const endForShutdown = (stream: SseStream) => {
    const handler = shutdownHandlers.get(stream);
    if (handler) handler();
    else stream.close({ event: 'shutdown', data: { reason: 'server shutting down' } });
  };
  return {
    open(request, reply, options = {}) {
      const retryMs = options.retryMs ?? defaults.retryMs ?? 3_000;
      const heartbeatMs = options.heartbeatMs ?? defaults.heartbeatMs ?? 15_000;
      const maxBuffered = options.maxBufferedBytes ?? defaults.maxBufferedBytes ?? 1_048_576;
      const raw = reply.raw;
      const controller = new AbortController();
      const listeners: (() => void)[] = [];
      let closed = false;

      reply.hijack();
      const headers: Record<string, string> = {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': String(request.id),
      };
      // Hijacked replies skip onSend hooks, so headers set earlier by plugins (helmet, CORS) are copied over.
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value !== undefined && !(name.toLowerCase() in headers)) headers[name] = String(value);
      }
      raw.writeHead(200, headers);
      // app.inject's fake socket has no setNoDelay.
      if (typeof raw.socket?.setNoDelay === 'function') raw.socket.setNoDelay(true);

      const finish = () => {
        if (closed) return;
        closed = true;
        clearInterval(heartbeat);
        streams.delete(stream);
        shutdownHandlers.delete(stream);
        controller.abort();
        for (const listener of listeners.splice(0)) listener();
      };

      const write = (chunk: string): boolean => {
        if (closed || raw.destroyed) return false;
        raw.write(chunk);
        if (raw.writableLength > maxBuffered) {
          // Backpressure: a stalled client must not grow our memory; it will replay on reconnect.
          request.log.warn({ buffered: raw.writableLength }, 'SSE client too slow, dropping stream');
          raw.destroy();
          finish();
          return false;
        }
        return true;
      };

      const heartbeat = setInterval(() => write(': ping\n\n'), heartbeatMs);
      heartbeat.unref();
      raw.on('close', finish);
      request.raw.on('close', () => {
        if (raw.writableFinished || raw.destroyed) finish();
      });

      const lastEventHeader = request.headers['last-event-id'];
      const stream: SseStream = {
        id: `sse-${process.pid}-${++streamCounter}`,
        lastEventId: Array.isArray(lastEventHeader) ? lastEventHeader[0] : lastEventHeader,
        get closed() {
          return closed;
        },
        send(event, data, id) {
          return stream.sendJson(event, JSON.stringify(data), id);
        },
        sendJson(event, json, id) {
          return write(id === undefined ? `event: ${event}\ndata: ${json}\n\n` : `id: ${id}\nevent: ${event}\ndata: ${json}\n\n`);
        },
        sendData(json) {
          return write(`data: ${json}\n\n`);
        },
        comment(text) {
          return write(`: ${text.replace(/\n/g, ' ')}\n\n`);
        },
        close(final) {
          if (closed) return;
          if (final) write(`event: ${final.event}\ndata: ${JSON.stringify(final.data)}\n\n`);
          raw.end();
          finish();
        },
        onClose(listener) {
          if (closed) listener();
          else listeners.push(listener);
        },
        signal: controller.signal,
      };
      streams.add(stream);
      if (options.onShutdown) shutdownHandlers.set(stream, options.onShutdown);
      write(`retry: ${retryMs}\n\n`);
      // Opened after the shutdown began (its request was already running): ended like the others, at once, so its
      // owner never starts work it would have to cut off.
      if (shuttingDown) endForShutdown(stream);
      return stream;
    },
    closeAll() {
      shuttingDown = true;
      for (const stream of [...streams]) endForShutdown(stream);
    },
    closeRemaining() {
      shuttingDown = true;
      for (const stream of [...streams]) stream.close({ event: 'shutdown', data: { reason: 'server shutting down' } });
    },
    size() {
      return streams.size;
    },
  };
}

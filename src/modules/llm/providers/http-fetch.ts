import http from 'node:http';
import https from 'node:https';
import { pipeline, Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';

/**
 * The `fetch` the provider clients are given: the same contract as the global fetch for what they send (a method,
 * headers and a string or byte body), carried by node:http(s) over keep-alive agents.
 *
 * Why: the global fetch (undici in Node 20) spends about a millisecond of CPU per request building WHATWG objects
 * before the request leaves and again when the response arrives; that millisecond is part of every chat turn's time
 * to first token. Behaviour the clients rely on is kept: network failures reject with `TypeError('fetch failed')`
 * carrying the cause (the SDK reports "Cannot connect to API" from it), an abort rejects with the signal's reason and
 * closes the connection, compressed responses are decompressed, and cancelling the body closes the connection.
 * Like undici, a request whose reused kept-alive connection is reset before any answer is sent again, once, on a new
 * one. Anything else (other body types, redirects) is handed to the global fetch.
 */

const agents = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

/** Statuses whose response has no body (the Response constructor refuses one). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function decoder(encoding: string): Transform | undefined {
  switch (encoding.toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return undefined;
  }
}

/** The body, decompressed; destroying what is returned (a cancelled read) also closes the connection. */
function decoded(response: http.IncomingMessage): Readable {
  const transform = decoder(String(response.headers['content-encoding'] ?? ''));
  return transform ? pipeline(response, transform, () => undefined) : response;
}

export const httpFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const body = init?.body;
  const agent = agents[url.protocol as keyof typeof agents];
  if (input instanceof Request || agent === undefined || !(body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array)) {
    return fetch(input, init);
  }
  const signal = init?.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(abortReason(signal));

  return new Promise<Response>((resolve, reject) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    headers['accept-encoding'] ??= 'gzip, deflate, br';
    if (body !== undefined && body !== null) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);

    let request!: http.ClientRequest;
    let settled = false;
    const onAbort = (): void => {
      request.destroy();
      if (!settled) {
        settled = true;
        reject(abortReason(signal!));
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    const send = (retried: boolean): void => {
      request = (url.protocol === 'https:' ? https : http).request(url, { method: init?.method ?? 'GET', headers, agent });
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (settled) return;
        // A kept-alive connection the server closed just as it was reused (its idle timeout; under load the close
        // can be noticed late): nothing of this request was answered, so it is sent once more on a new connection,
        // as Node's documentation advises for reused sockets.
        if (!retried && request.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
          send(true);
          return;
        }
        signal?.removeEventListener('abort', onAbort);
        settled = true;
        reject(new TypeError('fetch failed', { cause: error }));
      });
      request.on('response', (response) => onResponse(response));
      request.end(body ?? undefined);
    };

    const onResponse = (response: http.IncomingMessage): void => {
      settled = true;
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && response.headers.location !== undefined) {
        // Redirects are rare for model APIs; the global fetch follows them by its rules.
        signal?.removeEventListener('abort', onAbort);
        response.resume();
        resolve(fetch(input, init));
        return;
      }
      const responseHeaders = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
        else responseHeaders.set(name, value);
      }
      // The body's own end (or its cancellation, which destroys the socket) ends the abort listener's job.
      response.once('close', () => signal?.removeEventListener('abort', onAbort));
      const stream = NULL_BODY_STATUSES.has(status) ? null : (Readable.toWeb(decoded(response)) as ReadableStream<Uint8Array>);
      if (stream === null) response.resume();
      resolve(new Response(stream, { status, statusText: response.statusMessage ?? '', headers: responseHeaders }));
    };

    send(false);
  });
};

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEgressUrl, createAllowlist, EgressError, egressFetch } from './egress.js';

describe('allowlist', () => {
  const allowlist = createAllowlist(['api.example.com', 'hooks.example.com:8443', '127.0.0.1:9000', '[::1]:7000']);

  it('allows a listed host on any port, or only on the listed port', () => {
    expect(allowlist.allows(new URL('https://api.example.com/v1'))).toBe(true);
    expect(allowlist.allows(new URL('http://API.Example.com:8080/'))).toBe(true);
    expect(allowlist.allows(new URL('https://hooks.example.com:8443/x'))).toBe(true);
    expect(allowlist.allows(new URL('https://hooks.example.com/x'))).toBe(false);
    expect(allowlist.allows(new URL('http://127.0.0.1:9000/'))).toBe(true);
    expect(allowlist.allows(new URL('http://127.0.0.1:9001/'))).toBe(false);
    expect(allowlist.allows(new URL('http://[::1]:7000/'))).toBe(true);
  });

  it('does not match look-alike hosts', () => {
    expect(allowlist.allows(new URL('https://api.example.com.evil.test/'))).toBe(false);
    expect(allowlist.allows(new URL('https://evilapi.example.com/'))).toBe(false);
    expect(allowlist.allows(new URL('https://api.example.com@evil.test/'))).toBe(false);
  });

  it('refuses other schemes, credentials in the URL and unlisted hosts with a reason', () => {
    const refuse = (url: string) => {
      try {
        checkEgressUrl(url, allowlist);
        return 'allowed';
      } catch (error) {
        return error instanceof EgressError ? error.code : 'other';
      }
    };
    expect(refuse('file:///etc/passwd')).toBe('invalid_url');
    expect(refuse('https://user:pw@api.example.com/')).toBe('invalid_url');
    expect(refuse('not a url')).toBe('invalid_url');
    expect(refuse('http://169.254.169.254/latest/meta-data')).toBe('not_allowed');
    expect(refuse('https://api.example.com/ok')).toBe('allowed');
  });

  it('an empty allowlist reaches nothing', () => {
    expect(createAllowlist([]).allows(new URL('http://127.0.0.1/'))).toBe(false);
  });
});

describe('egressFetch', () => {
  const server = createServer((request, response) => {
    if (request.url === '/redirect') response.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
    else if (request.url === '/large') response.writeHead(200).end('x'.repeat(4_096));
    else if (request.url === '/slow') setTimeout(() => response.end('late'), 2_000).unref();
    else response.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
  });
  let base = '';
  let allowlist = createAllowlist([]);

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
    allowlist = createAllowlist([`127.0.0.1:${port}`]);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('returns a redirect as it is, without following it', async () => {
    const response = await egressFetch({ method: 'GET', url: `${base}/redirect` }, allowlist);
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('http://127.0.0.1:1/elsewhere');
  });

  it('stops reading past the size limit and after the deadline', async () => {
    await expect(egressFetch({ method: 'GET', url: `${base}/large`, maxResponseBytes: 1_000 }, allowlist)).rejects.toMatchObject({ code: 'too_large' });
    await expect(egressFetch({ method: 'GET', url: `${base}/slow`, timeoutMs: 100 }, allowlist)).rejects.toMatchObject({ code: 'timeout' });
    expect((await egressFetch({ method: 'GET', url: `${base}/ok` }, allowlist)).body).toBe('hello');
  });

  it('checks the allowlist on every call', async () => {
    await expect(egressFetch({ method: 'GET', url: `${base}/ok` }, createAllowlist(['other.example'])) ).rejects.toMatchObject({ code: 'not_allowed' });
  });
});

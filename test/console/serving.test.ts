import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_DIST } from '../../src/http/console.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';

const html = { accept: 'text/html,application/xhtml+xml' };

describe('the web console is served at / by the same process', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is built by npm run build', () => {
    expect(fs.existsSync(path.join(CONSOLE_DIST, 'index.html'))).toBe(true);
  });

  it('answers a browser at / and at client routes with the page shell under its own CSP', async () => {
    for (const url of ['/', '/chat', '/documents/8f4e0a56-3f1e-4a43-9d0e-4ad3d7e1c2b1', '/approvals?view=mine']) {
      const response = await t.app.inject({ url, headers: html });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toContain('text/html');
      expect(response.body).toContain('<div id="root"></div>');
      const csp = String(response.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      expect(response.headers['cache-control']).toBe('no-cache');
    }
  });

  it('has no inline script in the page shell', async () => {
    const body = (await t.app.inject({ url: '/', headers: html })).body;
    for (const tag of body.match(/<script[^>]*>[\s\S]*?<\/script>/g) ?? []) expect(tag).toMatch(/^<script[^>]*\bsrc="[^"]+"[^>]*><\/script>$/);
  });

  it('serves hashed assets as immutable files', async () => {
    const shell = (await t.app.inject({ url: '/', headers: html })).body;
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(shell)![1];
    const response = await t.app.inject({ url: script });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('javascript');
    expect(response.headers['cache-control']).toContain('immutable');
  });

  it('keeps the JSON service description for API clients at /', async () => {
    const response = await t.app.inject({ url: '/', headers: { accept: 'application/json' } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ links: { api: '/api/v1' } });
  });

  it('never shadows the API: unknown API paths stay 404 problems with the API CSP', async () => {
    for (const url of ['/api/v1/nope', '/api/v1/chat/sessions/x/y/z', '/mcp/x', '/health/nope', '/metrics/x', '/openapi.json/x', '/docs/nope.js']) {
      const response = await t.app.inject({ url, headers: html });
      expect(response.statusCode, url).toBe(404);
      expect(response.headers['content-type'], url).toContain('application/problem+json');
      expect(response.headers['content-security-policy'], url).toMatch(/^default-src 'none'; ?frame-ancestors 'none'$/);
    }
    // /v1 answers in OpenAI's error shape (its clients parse that), still never with the console.
    const openai = await t.app.inject({ url: '/v1/nope', headers: html });
    expect(openai.statusCode).toBe(404);
    expect(openai.headers['content-type']).toContain('application/json');
    expect(openai.json()).toMatchObject({ error: { type: expect.any(String) } });
    expect(openai.headers['content-security-policy']).toMatch(/^default-src 'none'; ?frame-ancestors 'none'$/);
    const api = await t.app.inject({ url: '/api/v1/auth/me', headers: html });
    expect(api.statusCode).toBe(401);
    expect(api.headers['content-security-policy']).toMatch(/^default-src 'none'; ?frame-ancestors 'none'$/);
    expect((await t.app.inject({ url: '/health' })).json()).toMatchObject({ status: 'ok' });
  });

  it('answers a missing file with a 404, not the page shell', async () => {
    const response = await t.app.inject({ url: '/assets/missing-0000.js', headers: html });
    expect(response.statusCode).toBe(404);
  });

  it('tells the sign-in page whether single sign-on is configured', async () => {
    const response = await t.app.inject({ url: '/console-settings.json' });
    expect(response.json()).toEqual({ oidc: false, registration: 'open' });
  });

  it('keeps the initial route within 250 KB of gzipped JavaScript', () => {
    const shell = fs.readFileSync(path.join(CONSOLE_DIST, 'index.html'), 'utf8');
    const entry = /src="\/assets\/([^"]+\.js)"/.exec(shell)![1];
    const assets = fs.readdirSync(path.join(CONSOLE_DIST, 'assets'));
    // The first screen after sign-in is the chat: the entry and the chat view's chunk.
    const chat = assets.find((name) => /^Chat-.*\.js$/.test(name))!;
    const gz = (name: string) => gzipSync(fs.readFileSync(path.join(CONSOLE_DIST, 'assets', name))).length;
    const total = gz(entry) + gz(chat);
    console.log(`console initial route JS: ${(total / 1024).toFixed(1)} KB gzipped (entry ${(gz(entry) / 1024).toFixed(1)} KB + chat ${(gz(chat) / 1024).toFixed(1)} KB), budget 250 KB`);
    expect(total).toBeLessThanOrEqual(250 * 1024);
  });
});

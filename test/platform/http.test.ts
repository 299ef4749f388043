import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

describe('cross-cutting HTTP behaviour', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { CORS_ORIGINS: 'https://app.example', RATE_LIMIT_REQUESTS: '5', RATE_LIMIT_PERIOD: '60' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('echoes a valid X-Request-Id and replaces an invalid one', async () => {
    const echoed = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'abc-123' } });
    expect(echoed.headers['x-request-id']).toBe('abc-123');
    const replaced = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'bad id with spaces\n' } });
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('sets security headers with a restrictive CSP on API routes', async () => {
    const response = await t.app.inject({ url: '/health' });
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['x-frame-options']).toBe('DENY');
    expect(response.headers['referrer-policy']).toBe('no-referrer');
    expect(response.headers['content-security-policy']).toContain("default-src 'none'");
    expect(response.headers['strict-transport-security']).toBeUndefined();
  });

  it('sends HSTS when the request came over TLS', async () => {
    const tls = await buildTestApp({ env: { TRUST_PROXY: 'true' } });
    try {
      const response = await tls.app.inject({ url: '/health', headers: { 'x-forwarded-proto': 'https' } });
      expect(response.headers['strict-transport-security']).toContain('max-age=');
    } finally {
      await tls.close();
    }
  });

  it('allows configured CORS origins only', async () => {
    const allowed = await t.app.inject({ method: 'OPTIONS', url: '/health', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example');
    const denied = await t.app.inject({ url: '/health', headers: { origin: 'https://evil.example' } });
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('publishes OpenAPI 3.1 and interactive docs', async () => {
    const spec = await t.app.inject({ url: '/openapi.json' });
    expect(spec.statusCode).toBe(200);
    const document = spec.json();
    expect(document.openapi).toBe('3.1.0');
    expect(document.paths['/health']).toBeDefined();
    expect(document.components.securitySchemes.bearerAuth.scheme).toBe('bearer');
    const docs = await t.app.inject({ url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.body).toContain('swagger');
  });

  it('exposes Prometheus metrics by route and status', async () => {
    await t.app.inject({ url: '/health' });
    const metrics = await t.app.inject({ url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain');
    expect(metrics.body).toMatch(/cdsa_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(metrics.body).toContain('cdsa_http_request_duration_seconds_bucket');
    expect(metrics.body).toContain('process_cpu_user_seconds_total');
  });

  it('answers 429 problem details with Retry-After past the global limit', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 7; i += 1) {
      last = await t.app.inject({ url: '/', remoteAddress: '10.9.9.9' });
      statuses.push(last.statusCode);
    }
    expect(statuses.slice(0, 5).every((status) => status === 200)).toBe(true);
    expect(last!.statusCode).toBe(429);
    expect(last!.headers['content-type']).toContain('application/problem+json');
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect(last!.json()).toMatchObject({ status: 429, title: 'Too Many Requests' });
  });
});

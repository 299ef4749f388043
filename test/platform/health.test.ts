import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

describe('health, readiness and docs', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('GET /health answers ok with the version', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', version: '0.0.0-test' });
    expect(response.headers['x-request-id']).toBeTruthy();
  });

  it('GET /health/ready reports the database and vector search', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.status).toBe('ready');
    expect(body.checks.database).toBe('ok');
    expect(body.vector_search).toBe(t.config.databaseUrl ? 'unavailable' : 'available');
    expect(body.document_embeddings).toMatchObject({ status: 'keyword-only', reason: expect.stringMatching(/EMBEDDING_MODEL/) });
  });

  it('unknown routes are RFC 9457 problems', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/nope?ticket=abc' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const body = response.json();
    expect(body).toMatchObject({ status: 404, title: 'Not Found', instance: '/nope' });
    expect(body.request_id).toBe(response.headers['x-request-id']);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';

/** Request-level errors are RFC 9457 problems with the right status, shown on a real public route. */
describe('request errors on POST /auth/register', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { BODY_LIMIT_BYTES: '4096' } });
  });
  afterAll(async () => {
    await t.close();
  });

  const post = (payload: string, contentType = 'application/json') =>
    t.app.inject({ method: 'POST', url: '/api/v1/auth/register', payload, headers: { 'content-type': contentType } });

  const expectProblem = (response: Awaited<ReturnType<typeof post>>, status: number) => {
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const body = response.json();
    expect(body).toMatchObject({ status, instance: '/api/v1/auth/register' });
    expect(typeof body.type).toBe('string');
    expect(typeof body.title).toBe('string');
    expect(body.request_id).toBe(response.headers['x-request-id']);
    expect(response.body).not.toMatch(/at .*\.(ts|js):\d+/);
    return body;
  };

  it('malformed JSON → 400', async () => {
    const body = expectProblem(await post('{"username": "a",'), 400);
    expect(body.detail).toMatch(/JSON/);
  });

  it('a content type other than JSON → 415', async () => {
    expectProblem(await post('username=a&password=b', 'application/x-www-form-urlencoded'), 415);
    expectProblem(await post('hello', 'text/plain'), 415);
  });

  it('a body over the limit → 413', async () => {
    expectProblem(await post(JSON.stringify({ username: 'big', email: 'big@example.test', password: 'x'.repeat(8000) })), 413);
  });

  it('an unknown field → 422 with a JSON pointer to it; a missing one likewise', async () => {
    const body = expectProblem(
      await post(JSON.stringify({ username: 'valid_name', email: 'v@example.test', password: 'A-long-enough-pass-9', nickname: 'x' })),
      422,
    );
    expect(body.errors).toContainEqual({ pointer: '/nickname', detail: 'is not an allowed field' });
    const missing = expectProblem(await post(JSON.stringify({ username: 'valid_name', password: 'A-long-enough-pass-9' })), 422);
    expect(missing.errors).toContainEqual({ pointer: '/email', detail: 'is required' });
  });

  it('a wrongly typed field → 422 pointing at it', async () => {
    const body = expectProblem(await post(JSON.stringify({ username: 'valid_name', email: 'not-an-email', password: { value: 1 } })), 422);
    const pointers = body.errors.map((error: { pointer: string }) => error.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/email', '/password']));
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser } from '../helpers/users.js';

type Operation = {
  operationId?: string;
  summary?: string;
  description?: string;
  parameters?: { in: string; name: string }[];
  responses: Record<string, { description?: string; $ref?: string }>;
  security?: unknown[];
};

/** The document generated clients are built from (openapi-typescript, openapi-generator): what they need of it. */
describe('OpenAPI document', () => {
  let t: TestApp;
  let document: { servers?: { url: string }[]; info: { license?: unknown }; paths: Record<string, Record<string, Operation>>; components: Record<string, Record<string, unknown>> };
  let operations: [string, string, Operation][];

  beforeAll(async () => {
    t = await buildTestApp();
    document = (await t.app.inject({ url: '/openapi.json' })).json();
    operations = Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => [path, method, operation] as [string, string, Operation]));
  });
  afterAll(async () => {
    await t.close();
  });

  it('declares every path parameter as one (no wildcard segments), and model ids as {id}', () => {
    for (const [path, method, operation] of operations) {
      expect(path, `${method} ${path}`).not.toMatch(/\*|:/);
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]).sort();
      const declared = (operation.parameters ?? []).filter((parameter) => parameter.in === 'path').map((parameter) => parameter.name).sort();
      expect(declared, `${method} ${path}`).toEqual(inPath);
    }
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/api/v1/llm/models/{id}', '/api/v1/llm/models/{id}/test']));
    expect(document.paths['/api/v1/llm/models/{id}/test']!.post!.description).toMatch(/first token/);
  });

  it('gives each operation a unique operationId, a summary, described responses and its problem responses', () => {
    const ids = operations.map(([, , operation]) => operation.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z0-9]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [path, method, operation] of operations) {
      const name = `${method} ${path}`;
      expect(operation.summary, name).toBeTruthy();
      for (const response of Object.values(operation.responses)) expect(response.description ?? response.$ref, name).not.toBe('Default Response');
      expect(Object.keys(operation.responses).some((status) => status.startsWith('4')), name).toBe(true);
      if (operation.security?.length === 0) continue;
      // The OpenAI-compatible /v1 answers OpenAI's error object, not problem details.
      if (path.startsWith('/v1/')) expect(JSON.stringify(operation.responses['401']), name).toContain('"error"');
      else expect(operation.responses['401'], name).toEqual({ $ref: '#/components/responses/Unauthorized' });
    }
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/v1/models', '/v1/chat/completions', '/v1/embeddings']));
    const decide = document.paths['/api/v1/approvals/{id}/decide']!.post!;
    expect(Object.keys(decide.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '422', '429']));
    expect(decide.description).toMatch(/approvals:decide/);
    expect(document.components.responses!.ValidationFailed).toMatchObject({ content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDetails' } } } });
  });

  it('sets servers and the license, states the password rules, and cites nothing outside the repository', () => {
    expect(document.servers?.[0]?.url).toMatch(/^https?:\/\//);
    expect(document.info.license).toMatchObject({ name: 'Apache-2.0' });
    const register = JSON.stringify(document.paths['/api/v1/auth/register']!.post);
    expect(register).toMatch(/"minLength":12/);
    expect(register).toMatch(/"maxLength":128/);
    expect(JSON.stringify(document)).not.toMatch(/CONTRACT/);
  });

  it('serves model ids URL-encoded as one path parameter, and still as the rest of the path', async () => {
    const admin = await createUser(t, { role: 'ADMIN' });
    const saved = await t.app.inject({ method: 'POST', url: '/api/v1/llm/models', headers: admin.headers, payload: { id: 'ollama/llama3.1:8b' } });
    expect(saved.statusCode, saved.body).toBeLessThan(300);
    for (const url of ['/api/v1/llm/models/ollama%2Fllama3.1%3A8b', '/api/v1/llm/models/ollama/llama3.1:8b']) {
      const response = await t.app.inject({ url, headers: admin.headers });
      expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
      expect(response.json().id).toBe('ollama/llama3.1:8b');
    }
    const tested = await t.app.inject({ method: 'POST', url: '/api/v1/llm/models/ollama%2Fllama3.1%3A8b/test', headers: admin.headers });
    expect(tested.statusCode, tested.body).toBe(200);
    expect(tested.json().ok).toBe(false);
    const unknown = await t.app.inject({ url: '/api/v1/llm/models/ollama%2Fnope', headers: admin.headers });
    expect(unknown.statusCode).toBe(404);
  });
});

describe('validation problems name what is allowed', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('a union of literals answers "must be one of", once', async () => {
    const manager = await createUser(t, { role: 'MANAGER' });
    const response = await t.app.inject({
      method: 'POST',
      url: '/api/v1/approvals/8d5b6c8e-3f0b-4a8a-9c7e-2b1f0e4d6a21/decide',
      headers: manager.headers,
      payload: { decision: 'approve' },
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toEqual([{ pointer: '/decision', detail: 'must be one of APPROVED, REJECTED' }]);
  });

  it('a password outside the schema’s length says how long it must be', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/register',
      payload: { username: 'shorty', email: 'shorty@example.test', password: 'Sh0rt-pass' },
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().errors).toEqual([{ pointer: '/password', detail: 'must be at least 12 characters long' }]);
  });
});

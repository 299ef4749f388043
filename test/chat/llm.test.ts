import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, multiInstance, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { eventually } from '../helpers/eventually.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, type MockLlm } from '../mock-llm/server.js';
import { chat, eventOf, mockEnv } from './helpers.js';

const API = '/api/v1';
const ENV_KEY = 'sk-test-chat-0123456789abcdef';
const STORED_KEY = 'sk-stored-in-vault-9876543210';

let mock: MockLlm;
/** A provider that accepts connections and never answers. */
let silent: MockLlm;
let t: TestApp;
let admin: TestUser;
let analyst: TestUser;

const env = (): Record<string, string> =>
  mockEnv(mock.url, { ANTHROPIC_BASE_URL: silent.url, LLM_REQUEST_TIMEOUT_MS: '1500', OPENAI_API_KEY: ENV_KEY });

beforeAll(async () => {
  mock = await startMockLlm({ models: ['mock-model', 'other-model'] });
  silent = await startMockLlm();
  silent.discovery.hang = true;
  t = await buildTestApp({ env: env() });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  admin = await createUser(t, { role: 'ADMIN' });
  analyst = await createUser(t);
});

afterAll(async () => {
  await t?.close();
  await mock?.close();
  await silent?.close();
});

beforeEach(() => {
  mock.requests.length = 0;
});

const request = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, user: TestUser | null, payload?: Record<string, unknown>) =>
  t.app.inject({ method, url: `${API}${url}`, headers: user ? user.headers : {}, ...(payload ? { payload } : {}) });

interface ModelView {
  id: string;
  provider: string;
  is_local: boolean;
  is_enabled: boolean;
  registered: boolean;
  discovered: boolean;
  context_window: number | null;
}

describe('models', () => {
  it('lists discovered models of every reachable provider without waiting long for a silent one', async () => {
    const started = performance.now();
    const response = await request('GET', '/llm/models', analyst);
    expect(performance.now() - started).toBeLessThan(4_500);
    expect(response.statusCode).toBe(200);
    const items = (response.json() as { items: ModelView[] }).items;
    const ids = items.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['ollama/mock-model', 'ollama/other-model', 'openai/mock-model', 'openai/other-model']));
    expect(ids.some((id) => id.startsWith('anthropic/'))).toBe(false);
    expect(items.find((m) => m.id === 'ollama/mock-model')).toMatchObject({ provider: 'ollama', is_local: true, is_enabled: true, discovered: true, registered: false });
    expect(items.find((m) => m.id === 'openai/mock-model')).toMatchObject({ provider: 'openai', is_local: false });

    const page = (await request('GET', '/llm/models?limit=1', analyst)).json();
    expect(page.items).toHaveLength(1);
    const next = (await request('GET', `/llm/models?limit=1&cursor=${page.next_cursor}`, analyst)).json();
    expect(next.items[0].id > page.items[0].id).toBe(true);
  });

  it('finds one model by its id, written as a path or URL-encoded', async () => {
    for (const path of ['/llm/models/openai/mock-model', '/llm/models/openai%2Fmock-model']) {
      const response = await request('GET', path, analyst);
      expect(response.statusCode, path).toBe(200);
      expect(response.json()).toMatchObject({ id: 'openai/mock-model', provider: 'openai' });
    }
    expect((await request('GET', '/llm/models/openai/no-such-model', analyst)).statusCode).toBe(404);
    expect((await request('GET', '/llm/models/nonsense', analyst)).statusCode).toBe(404);
  });

  it('lets only admins register, configure and disable models; a disabled model cannot be chatted with', async () => {
    const body = { id: 'openai/registered-model', name: 'Registered', context_window: 32_000, config: { temperature: 0.1 } };
    expect((await request('POST', '/llm/models', analyst, body)).statusCode).toBe(403);
    expect((await request('POST', '/llm/models', null, body)).statusCode).toBe(401);

    const created = await request('POST', '/llm/models', admin, body);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ id: 'openai/registered-model', name: 'Registered', context_window: 32_000, is_enabled: true, registered: true, discovered: false, config: { temperature: 0.1 } });
    const listed = (await request('GET', '/llm/models', analyst)).json().items as ModelView[];
    expect(listed.find((m) => m.id === 'openai/registered-model')).toMatchObject({ registered: true });

    const disabled = await request('POST', '/llm/models', admin, { id: 'openai/registered-model', is_enabled: false });
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json()).toMatchObject({ is_enabled: false, name: 'Registered', context_window: 32_000 });

    const refused = await request('POST', '/chat/stream', analyst, { message: 'hi', model: 'openai/registered-model' });
    expect(refused.statusCode).toBe(422);
    expect(mock.chatRequests()).toHaveLength(0);

    const events = (await auditEvents(t, 'LLM_CONFIG_CHANGED')).filter((row) => row.resource_id === 'openai/registered-model');
    expect(events.map((row) => row.details.action)).toEqual(['model_registered', 'model_updated']);
    expect(events[1]!.details.changes).toEqual({ is_enabled: false });
    expect(events[1]!.user_id).toBe(admin.user.id);

    for (const bad of [{ id: 'nope' }, { id: 'openai/x', extra: true }, { id: 'openai/x', config: { top_k: 3 } }, { id: 'openai/x', context_window: -5 }]) {
      expect((await request('POST', '/llm/models', admin, bad)).statusCode, JSON.stringify(bad)).toBe(422);
    }
  });

  it('tests a model through its client: latency and time to first token', async () => {
    mock.script(textReply(['O', 'K'], { chunkDelayMs: 50 }));
    const response = await request('POST', '/llm/models/openai/mock-model/test', admin);
    expect(response.statusCode).toBe(200);
    const result = response.json();
    expect(result).toMatchObject({ ok: true, detail: expect.stringContaining('OK') });
    expect(result.first_token_ms).toBeGreaterThanOrEqual(0);
    expect(result.latency_ms).toBeGreaterThanOrEqual(result.first_token_ms);
    // The whole answer includes the pause between its two chunks.
    expect(result.latency_ms).toBeGreaterThanOrEqual(45);

    mock.script([{ type: 'error', status: 500, message: 'weights missing' }]);
    const failed = (await request('POST', '/llm/models/openai%2Fmock-model/test', admin)).json();
    expect(failed).toMatchObject({ ok: false, first_token_ms: null, detail: expect.stringContaining('weights missing') });

    expect((await request('POST', '/llm/models/openai/mock-model/test', analyst)).statusCode).toBe(403);
    expect((await request('POST', '/llm/models/openai/mock-model/other', admin)).statusCode).toBe(404);
  });
});

describe('status', () => {
  it('reports each provider, an unreachable one without breaking the others', async () => {
    const response = await request('GET', '/llm/status', analyst);
    expect(response.statusCode).toBe(200);
    const status = response.json();
    expect(Object.keys(status).sort()).toEqual(['anthropic', 'ollama', 'openai']);
    expect(status.ollama).toMatchObject({ reachable: true, is_local: true, models: ['ollama/mock-model', 'ollama/other-model'], detail: null });
    expect(status.ollama.latency_ms).toEqual(expect.any(Number));
    expect(status.openai).toMatchObject({ reachable: true, is_local: false });
    expect(status.anthropic).toMatchObject({ reachable: false, latency_ms: null, models: [], is_local: false });
    expect(status.anthropic.detail).toContain('anthropic');
  });
});

describe('gateway settings', () => {
  it('admins set the default model and temperature, audited; chat uses them', async () => {
    expect((await request('PUT', '/llm/config', analyst, { temperature: 0.5 })).statusCode).toBe(403);
    expect((await request('PUT', '/llm/config', admin, { default_model: 'bogus' })).statusCode).toBe(422);
    expect((await request('PUT', '/llm/config', admin, { temperature: 5 })).statusCode).toBe(422);
    expect((await request('PUT', '/llm/config', admin, { colour: 'red' })).statusCode).toBe(422);

    const updated = await request('PUT', '/llm/config', admin, { default_model: 'ollama/other-model', temperature: 0.25 });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toMatchObject({ default_model: 'ollama/other-model', temperature: 0.25, max_context_tokens: null });
    expect((await request('GET', '/llm/config', analyst)).json()).toMatchObject({ default_model: 'ollama/other-model' });
    const [changed] = (await auditEvents(t, 'LLM_CONFIG_CHANGED')).filter((row) => row.resource_id === 'config');
    expect(changed!.details).toMatchObject({
      action: 'config_updated',
      changes: { default_model: { from: null, to: 'ollama/other-model' }, temperature: { from: null, to: 0.25 } },
    });

    try {
      mock.script(textReply(['defaulted']));
      const stream = await chat(t, analyst.headers, { message: 'which model?' });
      expect(eventOf(stream.events, 'message').model).toBe('ollama/other-model');
      const body = mock.chatRequests()[0]!.body as { model: string; temperature?: number; options?: { temperature?: number } };
      expect(body.model).toBe('other-model');
      // This Ollama client sends it at the top level; Ollama's own docs put it under `options`.
      expect(body.temperature ?? body.options?.temperature).toBe(0.25);
    } finally {
      await request('PUT', '/llm/config', admin, { default_model: null, temperature: null });
    }
  });

  it('keeps a provider key set through the API as a system credential and uses it instead of the environment', async () => {
    expect((await request('PUT', '/llm/providers/openai/credentials', analyst, { api_key: STORED_KEY })).statusCode).toBe(403);
    expect((await request('PUT', '/llm/providers/ollama/credentials', admin, { api_key: STORED_KEY })).statusCode).toBe(422);

    const stored = await request('PUT', '/llm/providers/openai/credentials', admin, { api_key: STORED_KEY });
    expect(stored.statusCode).toBe(200);
    expect(stored.json().providers_with_stored_keys).toEqual(['openai']);
    expect(stored.body).not.toContain(STORED_KEY);
    const [secret] = await queryRows<{ encrypted_value: string }>(
      t.app.infra.database.db,
      sql`SELECT encrypted_value FROM system_credentials WHERE name = 'llm.openai.api_key'`,
    );
    expect(secret!.encrypted_value).toMatch(/^v1\./);
    const [leaks] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`SELECT count(*)::int AS n FROM audit_events WHERE details::text LIKE ${`%${STORED_KEY}%`}`);
    expect(leaks!.n).toBe(0);

    mock.script(textReply(['with the stored key']));
    await chat(t, analyst.headers, { message: 'hi', model: 'openai/mock-model' });
    expect(mock.chatRequests()[0]!.headers.authorization).toBe(`Bearer ${STORED_KEY}`);

    const removed = await request('DELETE', '/llm/providers/openai/credentials', admin);
    expect(removed.statusCode).toBe(200);
    expect(removed.json().providers_with_stored_keys).toEqual([]);
    mock.script(textReply(['with the environment key']));
    await chat(t, analyst.headers, { message: 'hi again', model: 'openai/mock-model' });
    expect(mock.chatRequests()[1]!.headers.authorization).toBe(`Bearer ${ENV_KEY}`);
    expect((await request('DELETE', '/llm/providers/openai/credentials', admin)).statusCode).toBe(404);
  });
});

describe.runIf(multiInstance)('several instances', () => {
  it('a settings change on one instance applies on the others at once, not after their cache expires', async () => {
    const other = await buildTestApp({ share: t, env: env() });
    try {
      // Warm the other instance's cache with the old settings.
      expect((await other.app.llm.resolveModel(undefined)).id).toBe('openai/mock-model');
      expect((await request('PUT', '/llm/config', admin, { default_model: 'ollama/mock-model' })).statusCode).toBe(200);
      await eventually(async () => (await other.app.llm.resolveModel(undefined)).id === 'ollama/mock-model', 3_000);
    } finally {
      await request('PUT', '/llm/config', admin, { default_model: null });
      await other.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, notificationsOf, startSink, type Sink } from './helpers.js';

let t: TestApp;
let sink: Sink;
let admin: TestUser;
let manager: TestUser;
let analyst: TestUser;

beforeAll(async () => {
  sink = await startSink();
  t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort } });
  admin = await createUser(t, { role: 'ADMIN' });
  manager = await createUser(t, { role: 'MANAGER' });
  analyst = await createUser(t, { role: 'ANALYST' });
});

afterAll(async () => {
  await t?.close();
  await sink?.close();
});

const echoSchema = { type: 'object', additionalProperties: false, properties: { q: { type: 'string' } } };

function webhook(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, description: 'Looks things up', input_schema: echoSchema, implementation: { type: 'webhook', url: `${sink.url}/lookup` }, ...extra };
}

async function get(user: TestUser, url: string) {
  return t.app.inject({ method: 'GET', url, headers: user.headers });
}

describe('built-in tools', () => {
  it('are registered at start-up, once, with their policies', async () => {
    const list = await get(analyst, '/api/v1/tools');
    expect(list.statusCode).toBe(200);
    const byName = new Map((list.json().items as { name: string }[]).map((tool) => [tool.name, tool]));
    expect(byName.get('redact_text')).toMatchObject({ requires_approval: false, required_role: 'ANALYST', implementation: { type: 'builtin', builtin: 'redact_text' } });
    expect(byName.get('http_request')).toMatchObject({ requires_approval: true, approver_role: 'MANAGER', approvals_required: 1 });

    expect(await t.app.tools.registry.seedBuiltins()).toEqual([]);
    const again = await get(admin, '/api/v1/tools?limit=200');
    expect((again.json().items as { name: string }[]).filter((tool) => tool.name === 'redact_text')).toHaveLength(1);
  });

  it('are found by name or by id', async () => {
    const byName = await get(analyst, '/api/v1/tools/redact_text');
    expect(byName.statusCode).toBe(200);
    const byId = await get(analyst, `/api/v1/tools/${byName.json().id as string}`);
    expect(byId.json()).toEqual(byName.json());
    expect((await get(analyst, '/api/v1/tools/no_such_tool')).statusCode).toBe(404);
    expect((await get(analyst, '/api/v1/tools/00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
  });
});

describe('registering tools', () => {
  it('is for tools:manage only', async () => {
    for (const user of [analyst, manager]) {
      const response = await t.app.inject({ method: 'POST', url: '/api/v1/tools', headers: user.headers, payload: webhook('not_allowed') });
      expect(response.statusCode).toBe(403);
    }
  });

  it('creates a webhook tool, audits it and tells the users who can use it', async () => {
    const created = await createTool(t, admin, webhook('lookup_manager', { required_role: 'MANAGER', cache_ttl_seconds: 30 }));
    expect(created).toMatchObject({ name: 'lookup_manager', version: 1 });
    const registered = (await auditEvents(t, 'TOOL_REGISTERED')).find((row) => row.resource_id === created.id);
    expect(registered).toMatchObject({ user_id: admin.user.id, details: { tool_name: 'lookup_manager', implementation: { type: 'webhook', host: sink.hostPort } } });

    const added = (await notificationsOf(t, 'TOOL_ADDED')).filter((row) => row.data.tool_id === created.id).map((row) => row.user_id);
    expect(added).toEqual(expect.arrayContaining([manager.user.id, admin.user.id]));
    expect(added).not.toContain(analyst.user.id);
  });

  it('refuses duplicates (409) and invalid definitions (422 with pointers)', async () => {
    await createTool(t, admin, webhook('lookup_dup'));
    const duplicate = await t.app.inject({ method: 'POST', url: '/api/v1/tools', headers: admin.headers, payload: webhook('lookup_dup') });
    expect(duplicate.statusCode).toBe(409);

    const cases: [Record<string, unknown>, string][] = [
      [webhook('bad_schema', { input_schema: { type: 'object', properties: { q: { type: 'nonsense' } } } }), '/input_schema'],
      [webhook('not_object', { input_schema: { type: 'string' } }), '/input_schema'],
      [webhook('far_away', { implementation: { type: 'webhook', url: 'https://example.com/hook' } }), '/implementation/url'],
      [webhook('no_url', { implementation: { type: 'webhook' } }), '/implementation/url'],
      [webhook('creds_in_url', { implementation: { type: 'webhook', url: `http://user:pw@${sink.hostPort}/x` } }), '/implementation/url'],
      [{ name: 'unknown_builtin', implementation: { type: 'builtin', builtin: 'rm_rf' } }, '/implementation/builtin'],
      [{ name: 'builtin_option', implementation: { type: 'builtin', builtin: 'redact_text', secret_name: 'x' } }, '/implementation/secret_name'],
      [webhook('analyst_approver', { approver_role: 'ANALYST' }), '/approver_role'],
      [webhook('reserved_header', { implementation: { type: 'webhook', url: `${sink.url}/x`, headers: { 'X-CDSA-Signature': 'forged' } } }), '/implementation/headers/X-CDSA-Signature'],
      [webhook('00000000-0000-4000-8000-000000000000'), '/name'],
      [{ ...webhook('extra_field'), owner: 'me' }, '/owner'],
      [webhook('bad_quorum', { approvals_required: 0 }), '/approvals_required'],
    ];
    for (const [body, pointer] of cases) {
      const response = await t.app.inject({ method: 'POST', url: '/api/v1/tools', headers: admin.headers, payload: body });
      expect(response.statusCode, `${String(body.name)}: ${response.body}`).toBe(422);
      const pointers = (response.json().errors as { pointer: string }[]).map((error) => error.pointer);
      expect(pointers, String(body.name)).toContain(pointer);
    }
  });

  it('registers a narrower variant of a built-in with its own policy', async () => {
    const created = await createTool(t, admin, { name: 'redact_gated', implementation: { type: 'builtin', builtin: 'redact_text' }, requires_approval: true });
    const tool = await get(analyst, `/api/v1/tools/${created.id}`);
    expect(tool.json()).toMatchObject({ requires_approval: true, input_schema: { required: ['text'] }, output_schema: { required: ['redacted_text', 'entities'] } });
  });
});

describe('who sees which tools', () => {
  it('lists only usable tools to non-admins, every tool to admins; a tool above one’s role is 403, a disabled one 404', async () => {
    const managerTool = await createTool(t, admin, webhook('visible_manager', { required_role: 'MANAGER' }));
    const disabled = await createTool(t, admin, webhook('visible_disabled', { is_enabled: false }));

    const names = async (user: TestUser) => ((await get(user, '/api/v1/tools?limit=200')).json().items as { name: string }[]).map((tool) => tool.name);
    expect(await names(analyst)).not.toContain('visible_manager');
    expect(await names(analyst)).not.toContain('visible_disabled');
    expect(await names(manager)).toContain('visible_manager');
    expect(await names(manager)).not.toContain('visible_disabled');
    expect(await names(admin)).toEqual(expect.arrayContaining(['visible_manager', 'visible_disabled']));

    expect((await get(analyst, `/api/v1/tools/${managerTool.id}`)).statusCode).toBe(403);
    expect((await get(manager, `/api/v1/tools/${managerTool.id}`)).statusCode).toBe(200);
    expect((await get(analyst, `/api/v1/tools/${disabled.id}`)).statusCode).toBe(404);
    expect((await get(admin, `/api/v1/tools/${disabled.id}`)).statusCode).toBe(200);

    const run = await t.app.inject({ method: 'POST', url: `/api/v1/tools/${managerTool.id}/execute`, headers: analyst.headers, payload: { args: {} } });
    expect(run.statusCode).toBe(403);
    const runDisabled = await t.app.inject({ method: 'POST', url: `/api/v1/tools/${disabled.id}/execute`, headers: analyst.headers, payload: { args: {} } });
    expect(runDisabled.statusCode).toBe(404);
  });

  it('pages the list with a cursor', async () => {
    const first = await get(admin, '/api/v1/tools?limit=1');
    expect(first.json().items).toHaveLength(1);
    const cursor = first.json().next_cursor as string;
    const second = await get(admin, `/api/v1/tools?limit=1&cursor=${cursor}`);
    expect((second.json().items as { name: string }[])[0]!.name > (first.json().items as { name: string }[])[0]!.name).toBe(true);
  });
});

describe('changing and removing tools', () => {
  it('updates a tool as a new version (audited, users told); renames collide with 409', async () => {
    const created = await createTool(t, admin, webhook('lookup_versioned'));
    const updated = await t.app.inject({ method: 'PUT', url: '/api/v1/tools/lookup_versioned', headers: admin.headers, payload: { description: 'Better lookups', cache_ttl_seconds: 60 } });
    expect(updated.statusCode, updated.body).toBe(200);
    expect(updated.json()).toMatchObject({ id: created.id, version: 2, description: 'Better lookups', cache_ttl_seconds: 60 });
    const audited = (await auditEvents(t, 'TOOL_UPDATED')).find((row) => row.resource_id === created.id);
    expect(audited?.details).toMatchObject({ version: 2, changed_fields: ['cache_ttl_seconds', 'description'] });
    const told = (await notificationsOf(t, 'TOOL_UPDATED')).filter((row) => row.data.tool_id === created.id).map((row) => row.user_id);
    expect(told).toEqual(expect.arrayContaining([analyst.user.id, manager.user.id]));

    const clash = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${created.id}`, headers: admin.headers, payload: { name: 'redact_text' } });
    expect(clash.statusCode).toBe(409);
    const bad = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${created.id}`, headers: admin.headers, payload: { implementation: { type: 'webhook', url: 'http://10.0.0.1/' } } });
    expect(bad.statusCode).toBe(422);
    const empty = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${created.id}`, headers: admin.headers, payload: {} });
    expect(empty.statusCode).toBe(422);
    const asManager = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${created.id}`, headers: manager.headers, payload: { description: 'x' } });
    expect(asManager.statusCode).toBe(403);
  });

  it('removes a tool (audited, users told); the name can be reused', async () => {
    const created = await createTool(t, admin, webhook('lookup_removed'));
    expect((await t.app.inject({ method: 'DELETE', url: '/api/v1/tools/lookup_removed', headers: analyst.headers })).statusCode).toBe(403);
    const removed = await t.app.inject({ method: 'DELETE', url: '/api/v1/tools/lookup_removed', headers: admin.headers });
    expect(removed.statusCode).toBe(204);
    expect((await get(admin, `/api/v1/tools/${created.id}`)).statusCode).toBe(404);
    expect((await auditEvents(t, 'TOOL_REMOVED')).some((row) => row.resource_id === created.id)).toBe(true);
    const told = (await notificationsOf(t, 'TOOL_REMOVED')).filter((row) => row.data.tool_id === created.id).map((row) => row.user_id);
    expect(told).toContain(analyst.user.id);
    const reused = await createTool(t, admin, webhook('lookup_removed'));
    expect(reused.id).not.toBe(created.id);
  });

  it('does not bring back a deleted built-in at the next start', async () => {
    const removed = await t.app.inject({ method: 'DELETE', url: '/api/v1/tools/http_request', headers: admin.headers });
    expect(removed.statusCode).toBe(204);
    expect(await t.app.tools.registry.seedBuiltins()).toEqual([]);
    expect((await get(admin, '/api/v1/tools/http_request')).statusCode).toBe(404);
  });
});

describe('route protection', () => {
  it('every tools and approvals route needs credentials and declares its permission', async () => {
    const routes = t.app.routeAccessTable().filter((route) => /^\/api\/v1\/(tools|approvals)/.test(route.url));
    expect(routes.length).toBe(12);
    expect(routes.filter((route) => route.public || route.requires === undefined)).toEqual([]);
    for (const route of routes) {
      const url = route.url.replace(':execution_id', '00000000-0000-4000-8000-000000000000').replace(':id', '00000000-0000-4000-8000-000000000000');
      const response = await t.app.inject({ method: route.method as 'GET', url, ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { payload: {} }) });
      expect(response.statusCode, `${route.method} ${route.url}`).toBe(401);
    }
  });
});

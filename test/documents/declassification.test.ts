import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/eventually.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from './helpers.js';

describe('documents: labels go up at once, down only with a second person', () => {
  let t: TestApp;
  let owner: TestUser;
  let admin: TestUser;

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await createUser(t, { role: 'MANAGER' });
    admin = await createUser(t, { role: 'ADMIN' });
  });
  afterAll(async () => {
    await t.close();
  });

  const label = async (id: string) => ((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${id}`, headers: owner.headers })).json() as DocumentView).label;

  it('raises a label immediately, with its audit event', async () => {
    const document = await uploadIndexed(t, owner, 'raise.txt', 'quarterly figures', { label: 'INTERNAL' });
    const raised = await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${document.id}`, headers: owner.headers, payload: { label: 'CONFIDENTIAL' } });
    expect(raised.statusCode).toBe(200);
    expect(raised.json()).toMatchObject({ label: 'CONFIDENTIAL', label_source: 'user' });
    const [event] = await queryRows<{ details: Record<string, unknown> }>(t.app.infra.database.db, sql`select details from audit_events where resource_id = ${document.id} and event_type = 'DOCUMENT_RECLASSIFIED'`);
    expect(event!.details).toMatchObject({ from: 'INTERNAL', to: 'CONFIDENTIAL', by: owner.user.id, approval_id: null });
  });

  it('lowers a label only when another MANAGER/ADMIN with enough clearance approves', async () => {
    const document = await uploadIndexed(t, owner, 'lower.txt', 'board minutes', { label: 'CONFIDENTIAL' });
    const request = await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${document.id}`, headers: owner.headers, payload: { label: 'PUBLIC' } });
    expect(request.statusCode).toBe(202);
    const approvalId = request.json().approval_id as string;
    expect(approvalId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await label(document.id)).toBe('CONFIDENTIAL');

    // The requester cannot approve their own request.
    const self = await t.app.inject({ method: 'POST', url: `/api/v1/approvals/${approvalId}/decide`, headers: owner.headers, payload: { decision: 'APPROVED' } });
    expect(self.statusCode).toBe(403);
    // A manager whose clearance is below the current label cannot either.
    const lowManager = await createUser(t, { role: 'MANAGER' });
    await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${lowManager.user.id}`, headers: admin.headers, payload: { clearance: 'INTERNAL' } });
    const tooLow = await t.app.inject({ method: 'POST', url: `/api/v1/approvals/${approvalId}/decide`, headers: lowManager.headers, payload: { decision: 'APPROVED' } });
    expect(tooLow.statusCode).toBe(403);
    expect(tooLow.json().detail).toMatch(/clearance of at least CONFIDENTIAL/);
    expect(await label(document.id)).toBe('CONFIDENTIAL');

    const approved = await t.app.inject({ method: 'POST', url: `/api/v1/approvals/${approvalId}/decide`, headers: admin.headers, payload: { decision: 'APPROVED' } });
    expect(approved.statusCode).toBe(200);
    await eventually(async () => (await label(document.id)) === 'PUBLIC');
    const events = await queryRows<{ details: Record<string, unknown> }>(t.app.infra.database.db, sql`select details from audit_events where resource_id = ${document.id} and event_type = 'DOCUMENT_RECLASSIFIED'`);
    expect(events).toHaveLength(1);
    expect(events[0]!.details).toMatchObject({ from: 'CONFIDENTIAL', to: 'PUBLIC', by: owner.user.id, approved_by: [admin.user.id], approval_id: approvalId });
  });

  it('refuses to lower a label together with other changes, and a non-owner cannot ask', async () => {
    const document = await uploadIndexed(t, owner, 'mixed.txt', 'mixed change', { label: 'CONFIDENTIAL' });
    const mixed = await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${document.id}`, headers: owner.headers, payload: { label: 'PUBLIC', title: 'x' } });
    expect(mixed.statusCode).toBe(422);
    const stranger = await createUser(t, { role: 'MANAGER' });
    const foreign = await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${document.id}`, headers: stranger.headers, payload: { label: 'PUBLIC' } });
    expect(foreign.statusCode).toBe(404);
  });

  it('a run without an approval never lowers a label, even if the tool is reconfigured to skip approvals', async () => {
    const document = await uploadIndexed(t, owner, 'direct.txt', 'direct call', { label: 'CONFIDENTIAL' });
    const tool = await t.app.inject({ method: 'GET', url: '/api/v1/tools/declassify_document', headers: admin.headers });
    expect(tool.statusCode).toBe(200);
    const changed = await t.app.inject({ method: 'PUT', url: `/api/v1/tools/${tool.json().id}`, headers: admin.headers, payload: { requires_approval: false } });
    expect(changed.statusCode).toBe(200);
    const direct = await t.app.inject({ method: 'POST', url: '/api/v1/tools/declassify_document/execute', headers: owner.headers, payload: { args: { document_id: document.id, from: 'CONFIDENTIAL', to: 'PUBLIC' } } });
    expect(direct.statusCode).toBe(502);
    expect(direct.json().detail).toMatch(/approval/);
    expect(await label(document.id)).toBe('CONFIDENTIAL');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS, type Label } from '../../src/lib/labels.js';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import type { Role } from '../../src/modules/auth/permissions.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from './helpers.js';

/**
 * The clearance × label × share matrix (CONTRACT §7), on every document route, generated: each route under
 * /documents/:id is classified as a content read, a metadata read or a management action, and every viewer is
 * checked against every document. The expectation is written here from the contract, independently of the policy.
 */

type Access = 'private' | 'user-share' | 'role-share' | 'organization';
const ACCESS_MODES: Access[] = ['private', 'user-share', 'role-share', 'organization'];

interface Viewer {
  name: string;
  role: Role;
  clearance: Label;
  /** Receives the user shares. */
  sharedWith: boolean;
}

const VIEWERS: Viewer[] = [
  { name: 'shared analyst (INTERNAL)', role: 'ANALYST', clearance: 'INTERNAL', sharedWith: true },
  { name: 'shared analyst with PUBLIC clearance', role: 'ANALYST', clearance: 'PUBLIC', sharedWith: true },
  { name: 'shared analyst with RESTRICTED clearance', role: 'ANALYST', clearance: 'RESTRICTED', sharedWith: true },
  { name: 'unrelated analyst (INTERNAL)', role: 'ANALYST', clearance: 'INTERNAL', sharedWith: false },
  { name: 'manager (role share target, CONFIDENTIAL)', role: 'MANAGER', clearance: 'CONFIDENTIAL', sharedWith: false },
  { name: 'admin (CONFIDENTIAL, not shared)', role: 'ADMIN', clearance: 'CONFIDENTIAL', sharedWith: false },
  { name: 'admin with PUBLIC clearance', role: 'ADMIN', clearance: 'PUBLIC', sharedWith: false },
];

const RANK: Record<Label, number> = { PUBLIC: 0, INTERNAL: 1, CONFIDENTIAL: 2, RESTRICTED: 3 };

function mayReadContent(viewer: Viewer, label: Label, access: Access): boolean {
  if (RANK[label] > RANK[viewer.clearance]) return false;
  if (access === 'organization') return true;
  if (access === 'user-share') return viewer.sharedWith;
  if (access === 'role-share') return viewer.role === 'MANAGER';
  return false;
}

const CONTENT_ROUTES = ['GET /api/v1/documents/:id/text', 'GET /api/v1/documents/:id/file', 'GET /api/v1/documents/:id/chunks'];
const METADATA_ROUTES = ['GET /api/v1/documents/:id'];
const ACCESS_LOG_ROUTES = ['GET /api/v1/documents/:id/access-log'];
const MANAGE_ROUTES = ['PATCH /api/v1/documents/:id', 'POST /api/v1/documents/:id/reindex', 'POST /api/v1/documents/:id/shares', 'DELETE /api/v1/documents/:id/shares/:share_id', 'DELETE /api/v1/documents/:id'];

describe('documents: clearance × label × share on every route', () => {
  let t: TestApp;
  let owner: TestUser;
  const viewers = new Map<string, TestUser>();
  const documents: { label: Label; access: Access; document: DocumentView; shareId: string | null }[] = [];

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await createUser(t, { role: 'ANALYST' });
    const admin = await createUser(t, { role: 'ADMIN' });
    for (const viewer of VIEWERS) {
      const user = await createUser(t, { role: viewer.role });
      // Set through the API after sign-in: a clearance change applies to the very next request.
      const patched = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${user.user.id}`, headers: admin.headers, payload: { clearance: viewer.clearance } });
      expect(patched.json().clearance).toBe(viewer.clearance);
      viewers.set(viewer.name, user);
    }
    for (const label of LABELS) {
      for (const access of ACCESS_MODES) {
        // RESTRICTED content is uploaded as such by its owner; the others start lower where needed.
        const document = await uploadIndexed(t, owner, `${label}-${access}.txt`, `report ${label} ${access}`, { label, visibility: access === 'organization' ? 'organization' : 'private' });
        let shareId: string | null = null;
        if (access === 'user-share') {
          for (const viewer of VIEWERS.filter((candidate) => candidate.sharedWith)) {
            const share = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${document.id}/shares`, headers: owner.headers, payload: { user_id: viewers.get(viewer.name)!.user.id } });
            expect(share.statusCode).toBe(201);
            shareId = share.json().id;
          }
        }
        if (access === 'role-share') {
          const share = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${document.id}/shares`, headers: owner.headers, payload: { role: 'MANAGER' } });
          expect(share.statusCode).toBe(201);
          shareId = share.json().id;
        }
        documents.push({ label, access, document, shareId });
      }
    }
  });
  afterAll(async () => {
    await t.close();
  });

  it('classifies every document route (a new route must be added here)', () => {
    const routes = t.app
      .routeAccessTable()
      .filter((route) => route.url.startsWith('/api/v1/documents/:id'))
      .map((route) => `${route.method} ${route.url}`);
    expect(routes.sort()).toEqual([...CONTENT_ROUTES, ...METADATA_ROUTES, ...ACCESS_LOG_ROUTES, ...MANAGE_ROUTES].sort());
  });

  it('content routes answer 200 exactly when label <= clearance and the document is visible or shared to them, else 404', async () => {
    const failures: string[] = [];
    for (const { label, access, document } of documents) {
      for (const route of CONTENT_ROUTES) {
        const url = route.split(' ')[1]!.replace(':id', document.id);
        const own = await t.app.inject({ method: 'GET', url, headers: owner.headers });
        if (own.statusCode !== 200) failures.push(`owner ${route} ${label}/${access} → ${own.statusCode}`);
        for (const viewer of VIEWERS) {
          const response = await t.app.inject({ method: 'GET', url, headers: viewers.get(viewer.name)!.headers });
          const expected = mayReadContent(viewer, label, access) ? 200 : 404;
          if (response.statusCode !== expected) failures.push(`${viewer.name} ${route} ${label}/${access} → ${response.statusCode}, expected ${expected}`);
          if (expected === 404 && response.body.includes('report')) failures.push(`${viewer.name} ${route} ${label}/${access} leaked content`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('search finds exactly the documents each viewer may read: the same query, different results by clearance and share', async () => {
    const failures: string[] = [];
    for (const viewer of [...VIEWERS, null]) {
      const user = viewer ? viewers.get(viewer.name)! : owner;
      const response = await t.app.inject({ method: 'POST', url: '/api/v1/documents/search', headers: user.headers, payload: { query: 'report', top_k: 50 } });
      expect(response.statusCode).toBe(200);
      const found = new Set((response.json().items as { document_id: string }[]).map((item) => item.document_id));
      for (const { label, access, document } of documents) {
        const expected = viewer ? mayReadContent(viewer, label, access) : true;
        if (found.has(document.id) !== expected) failures.push(`${viewer?.name ?? 'owner'} search ${label}/${access}: found=${found.has(document.id)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('the access log is the owner’s and audit:read’s; anyone else gets 404', async () => {
    const failures: string[] = [];
    for (const { label, access, document } of documents) {
      const url = `/api/v1/documents/${document.id}/access-log`;
      const own = await t.app.inject({ method: 'GET', url, headers: owner.headers });
      if (own.statusCode !== 200) failures.push(`owner access-log ${label}/${access} → ${own.statusCode}`);
      for (const viewer of VIEWERS) {
        const response = await t.app.inject({ method: 'GET', url, headers: viewers.get(viewer.name)!.headers });
        const expected = viewer.role === 'ANALYST' ? 404 : 200;
        if (response.statusCode !== expected) failures.push(`${viewer.name} access-log ${label}/${access} → ${response.statusCode}, expected ${expected}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('metadata (GET and the list) is visible to readers and to documents:manage, whatever the clearance', async () => {
    const failures: string[] = [];
    for (const viewer of VIEWERS) {
      const user = viewers.get(viewer.name)!;
      const listed = new Set<string>();
      let cursor: string | null = null;
      do {
        const page = (await t.app.inject({ method: 'GET', url: `/api/v1/documents?limit=200${cursor ? `&cursor=${cursor}` : ''}`, headers: user.headers })).json() as { items: DocumentView[]; next_cursor: string | null };
        for (const item of page.items) listed.add(item.id);
        cursor = page.next_cursor;
      } while (cursor);
      for (const { label, access, document } of documents) {
        const expected = mayReadContent(viewer, label, access) || viewer.role === 'ADMIN';
        const response = await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}`, headers: user.headers });
        if (response.statusCode !== (expected ? 200 : 404)) failures.push(`${viewer.name} GET ${label}/${access} → ${response.statusCode}`);
        if (listed.has(document.id) !== expected) failures.push(`${viewer.name} list ${label}/${access}: listed=${listed.has(document.id)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('management routes are the owner’s and documents:manage’s: everyone else gets 404 and changes nothing', async () => {
    const failures: string[] = [];
    const bodies: Record<string, unknown> = { PATCH: { title: 'taken over' }, 'POST /api/v1/documents/:id/shares': { role: 'ANALYST' } };
    for (const { label, access, document, shareId } of documents) {
      const before = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}`, headers: owner.headers })).json() as DocumentView;
      for (const viewer of VIEWERS.filter((candidate) => candidate.role !== 'ADMIN')) {
        for (const route of MANAGE_ROUTES) {
          const [method, template] = route.split(' ') as [string, string];
          const url = template.replace(':id', document.id).replace(':share_id', shareId ?? '00000000-0000-4000-8000-000000000000');
          const payload = bodies[route] ?? bodies[method];
          const response = await t.app.inject({ method: method as 'GET', url, headers: viewers.get(viewer.name)!.headers, ...(payload ? { payload } : {}) });
          if (response.statusCode !== 404) failures.push(`${viewer.name} ${route} ${label}/${access} → ${response.statusCode}`);
        }
      }
      const after = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}`, headers: owner.headers })).json() as DocumentView;
      if (after.title !== before.title || after.shares.length !== before.shares.length || after.status !== 'indexed') failures.push(`${label}/${access} changed`);
    }
    expect(failures).toEqual([]);
  });

  it('an administrator manages metadata of a document above their clearance without reading it', async () => {
    const restricted = documents.find((entry) => entry.label === 'RESTRICTED' && entry.access === 'private')!.document;
    const admin = viewers.get('admin with PUBLIC clearance')!;
    const renamed = await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${restricted.id}`, headers: admin.headers, payload: { title: 'renamed by admin', tags: ['reviewed'] } });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toMatchObject({ title: 'renamed by admin', tags: ['reviewed'], label: 'RESTRICTED' });
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${restricted.id}/text`, headers: admin.headers })).statusCode).toBe(404);
  });

  it('a clearance change applies to the very next request', async () => {
    const confidential = documents.find((entry) => entry.label === 'CONFIDENTIAL' && entry.access === 'organization')!.document;
    const analyst = viewers.get('unrelated analyst (INTERNAL)')!;
    const url = `/api/v1/documents/${confidential.id}/text`;
    expect((await t.app.inject({ method: 'GET', url, headers: analyst.headers })).statusCode).toBe(404);
    const admin = await createUser(t, { role: 'ADMIN' });
    await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${analyst.user.id}`, headers: admin.headers, payload: { clearance: 'CONFIDENTIAL' } });
    expect((await t.app.inject({ method: 'GET', url, headers: analyst.headers })).statusCode).toBe(200);
    await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${analyst.user.id}`, headers: admin.headers, payload: { clearance: 'INTERNAL' } });
    expect((await t.app.inject({ method: 'GET', url, headers: analyst.headers })).statusCode).toBe(404);
    // Nobody raises their own clearance.
    const self = await t.app.inject({ method: 'PATCH', url: `/api/v1/users/${admin.user.id}`, headers: admin.headers, payload: { clearance: 'RESTRICTED' } });
    expect(self.statusCode).toBe(409);
  });
});

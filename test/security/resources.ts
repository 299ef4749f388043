import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../src/db/client.js';
import { SYSTEM_CONTEXT, type Role } from '../../src/modules/auth/permissions.js';
import type { TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from '../documents/helpers.js';

/**
 * Every non-public route with a path parameter must be listed here, so the object-level authorization (BOLA) test
 * covers it. `owned`: the object belongs to one user; another user must get exactly what a non-existent id gets
 * (404, never 403 or 200). `shared`: the object is not per-user (say why); role checks alone govern it.
 * A route missing from this table fails `route-matrix.test.ts` with instructions.
 */
export type ResourceScope =
  | {
      kind: 'owned';
      /** Creates the owner's object; returns its id, or every path parameter of the route by name. */
      create(t: TestApp, owner: TestUser): Promise<string | Record<string, string>>;
      /** Roles of the owner and of the other user; by default both are the route's lowest permitted role. */
      ownerRole?: Role;
      intruderRole?: Role;
    }
  | { kind: 'shared'; reason: string };

/** A chat session holding one stored message, through the chat service (the model is never called). */
async function chatSession(t: TestApp, owner: TestUser): Promise<string> {
  const actor = { userId: owner.user.id, username: owner.user.username, role: owner.user.role, sessionId: randomUUID() };
  const turn = await t.app.chat.startTurn(actor, { message: 'private notes', model: 'ollama/fixture', tools: 'none' }, SYSTEM_CONTEXT);
  return turn.sessionId;
}

/** An indexed private document of the owner's, uploaded through the API. */
async function ownedDocument(t: TestApp, owner: TestUser): Promise<string> {
  const document = await uploadIndexed(t, owner, 'private-notes.txt', `private notes ${randomUUID()}`);
  return document.id;
}

const ownedDocumentScope: ResourceScope = { kind: 'owned', create: ownedDocument };

export const ROUTE_SCOPES: Record<string, ResourceScope> = {
  '/api/v1/documents/:id': ownedDocumentScope,
  '/api/v1/documents/:id/text': ownedDocumentScope,
  '/api/v1/documents/:id/file': ownedDocumentScope,
  '/api/v1/documents/:id/chunks': ownedDocumentScope,
  // The owner's; `audit:read` (MANAGER and up) reads the whole trail anyway, so the intruder is another analyst.
  '/api/v1/documents/:id/access-log': ownedDocumentScope,
  '/api/v1/documents/:id/reindex': ownedDocumentScope,
  '/api/v1/documents/:id/shares': ownedDocumentScope,
  '/api/v1/documents/:id/shares/:share_id': {
    kind: 'owned',
    async create(t, owner) {
      const id = await ownedDocument(t, owner);
      const colleague = await createUser(t);
      const share = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${id}/shares`, headers: owner.headers, payload: { user_id: colleague.user.id } });
      if (share.statusCode !== 201) throw new Error(`share failed: ${share.statusCode} ${share.body}`);
      return { id, share_id: share.json().id as string };
    },
  },

  '/api/v1/users/:id': { kind: 'shared', reason: 'user administration (users:manage) covers every account' },
  '/api/v1/users/:id/sessions/revoke': { kind: 'shared', reason: 'user administration (users:manage) covers every account' },

  '/api/v1/audit/events/:id': {
    kind: 'owned',
    // Signing in leaves an event of the owner's own.
    async create(t, owner) {
      const [row] = await queryRows<{ id: string }>(
        t.app.infra.database.db,
        sql`select id from audit_events where user_id = ${owner.user.id} order by seq limit 1`,
      );
      if (!row) throw new Error('the owner has no audit event');
      return row.id;
    },
  },
  '/api/v1/audit/report/:id': {
    kind: 'owned',
    // Only administrators request reports (and see all of them); anyone below must not see one.
    ownerRole: 'ADMIN',
    intruderRole: 'MANAGER',
    async create(t, owner) {
      const now = new Date();
      const response = await t.app.inject({
        method: 'POST',
        url: '/api/v1/audit/report',
        headers: owner.headers,
        payload: { from: new Date(now.getTime() - 3_600_000).toISOString(), to: now.toISOString(), format: 'json' },
      });
      if (response.statusCode !== 202) throw new Error(`report request failed: ${response.statusCode} ${response.body}`);
      return (response.json() as { report_id: string }).report_id;
    },
  },

  '/api/v1/notifications/:id': {
    kind: 'owned',
    async create(t, owner) {
      const created = await t.app.notifications.notify({ userId: owner.user.id, type: 'SYSTEM_MAINTENANCE', title: 'Maintenance', message: 'Tonight' });
      if (!created) throw new Error('notification was not created');
      return created.id;
    },
  },
  '/api/v1/notifications/:id/read': {
    kind: 'owned',
    async create(t, owner) {
      const created = await t.app.notifications.notify({ userId: owner.user.id, type: 'SYSTEM_MAINTENANCE', title: 'Maintenance', message: 'Tonight' });
      if (!created) throw new Error('notification was not created');
      return created.id;
    },
  },

  '/api/v1/vault/secrets/:id': { kind: 'shared', reason: 'vault entries belong to the organisation; vault:* permissions govern them' },
  '/api/v1/vault/secrets/:id/versions': { kind: 'shared', reason: 'vault entries belong to the organisation' },
  '/api/v1/vault/secrets/:id/versions/:version': { kind: 'shared', reason: 'vault entries belong to the organisation' },

  '/api/v1/tools/:id': { kind: 'shared', reason: 'the tool catalogue is global; required_role and tools:manage govern it' },
  '/api/v1/tools/:id/execute': { kind: 'shared', reason: "any tool of the catalogue whose required_role is at most the caller's" },
  '/api/v1/tools/:id/executions': {
    kind: 'shared',
    reason: "the id is the (global) tool's; the list holds only the caller's own executions (approvers see all): test/tools/execution.test.ts",
  },
  '/api/v1/tools/:id/executions/:execution_id': {
    kind: 'shared',
    reason: "the id is the (global) tool's; another user's execution answers 404 like a missing one: test/tools/execution.test.ts",
  },
  '/api/v1/approvals/:id': {
    kind: 'owned',
    // The caller's own approval request (an admin defines a gated tool, the owner calls it); another analyst must not see it.
    async create(t, owner) {
      const admin = await createUser(t, { role: 'ADMIN' });
      const name = `gated_${owner.user.id.slice(0, 8)}`;
      const tool = await t.app.inject({
        method: 'POST',
        url: '/api/v1/tools',
        headers: admin.headers,
        payload: { name, implementation: { type: 'builtin', builtin: 'redact_text' }, requires_approval: true },
      });
      if (tool.statusCode !== 201) throw new Error(`tool registration failed: ${tool.statusCode} ${tool.body}`);
      const call = await t.app.inject({ method: 'POST', url: `/api/v1/tools/${name}/execute`, headers: owner.headers, payload: { args: { text: 'x' } } });
      if (call.statusCode !== 202) throw new Error(`expected a pending approval: ${call.statusCode} ${call.body}`);
      return (call.json() as { approval_id: string }).approval_id;
    },
  },
  '/api/v1/approvals/:id/decide': {
    kind: 'shared',
    reason: "approvers decide other people's requests by design; self-approval and the approver role are refused: test/tools/approvals.test.ts",
  },

  '/api/v1/mcp/servers/:id': { kind: 'shared', reason: 'MCP servers belong to the organisation; tools:manage governs them' },
  '/api/v1/mcp/servers/:id/sync': { kind: 'shared', reason: 'MCP servers belong to the organisation; tools:manage governs them' },

  '/api/v1/llm/models/*': { kind: 'shared', reason: 'the model catalogue is global' },
  '/api/v1/llm/models/:id': { kind: 'shared', reason: 'the model catalogue is global' },
  '/api/v1/llm/models/:id/test': { kind: 'shared', reason: 'the model catalogue is global' },
  '/api/v1/chat/sessions/:id': { kind: 'owned', create: chatSession },
  '/api/v1/chat/sessions/:id/export': { kind: 'owned', create: chatSession },
  '/api/v1/llm/providers/:provider/credentials': { kind: 'shared', reason: 'provider configuration is global (llm:configure)' },
  '/api/v1/api-keys/:id': {
    kind: 'owned',
    async create(t, owner) {
      const created = await t.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: owner.headers, payload: { name: 'private key', scopes: ['chat'] } });
      if (created.statusCode !== 201) throw new Error(`API key creation failed: ${created.statusCode} ${created.body}`);
      return created.json().id as string;
    },
  },
};

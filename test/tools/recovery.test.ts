import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { executionArgsAad } from '../../src/modules/tools/tool-engine.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { eventually } from '../helpers/eventually.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, gatedWebhook, notificationsOf, startSink, type Sink } from './helpers.js';

/**
 * Crash recovery on either database (the real kill of an instance is in test/reliability): a call left `running` by
 * an instance whose lease ran out becomes `interrupted`, audited and notified; one of a live instance is left alone.
 */
describe('calls left running by a gone instance', () => {
  let sink: Sink;
  let t: TestApp;
  let admin: TestUser;
  let analyst: TestUser;
  let toolId: string;

  beforeAll(async () => {
    sink = await startSink();
    t = await buildTestApp({ env: { TOOL_HTTP_ALLOWLIST: sink.hostPort, INSTANCE_LEASE_SECONDS: '1' } });
    admin = await createUser(t, { role: 'ADMIN' });
    analyst = await createUser(t);
    toolId = (await createTool(t, admin, gatedWebhook(sink, 'recovered_transfer'))).id;
  });

  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  async function runningCall(instanceId: string): Promise<string> {
    const id = randomUUID();
    const args = t.app.fieldCipher.encrypt('{"amount":1,"to":"x"}', executionArgsAad(id));
    await t.app.infra.database.db.execute(sql`
      INSERT INTO tool_executions (id, tool_id, tool_name, tool_version, user_id, status, source, encrypted_args, args_digest, instance_id, started_at)
      VALUES (${id}, ${toolId}, 'recovered_transfer', 1, ${analyst.user.id}, 'running', 'api', ${args}, 'digest', ${instanceId}, now())`);
    return id;
  }

  const statusOf = async (id: string) =>
    (await queryRows<{ status: string; error: string | null }>(t.app.infra.database.db, sql`SELECT status, error FROM tool_executions WHERE id = ${id}`))[0];

  it('resolves them as interrupted within about a lease, tells the requester, and leaves a live instance’s calls alone', async () => {
    const gone = randomUUID();
    const live = randomUUID();
    await t.app.infra.database.db.execute(sql`
      INSERT INTO service_instances (id, hostname, pid, started_at, heartbeat_at)
      VALUES (${gone}, 'crashed-host', 1, now() - interval '1 hour', now() - interval '1 minute'),
             (${live}, 'live-host', 2, now(), now() + interval '1 hour')`);
    const orphan = await runningCall(gone);
    const vanished = await runningCall(randomUUID());
    const alive = await runningCall(live);

    await eventually(async () => (await statusOf(orphan))?.status === 'interrupted' && (await statusOf(vanished))?.status === 'interrupted', 10_000);
    expect((await statusOf(orphan))?.error).toContain('may or may not have taken effect');
    expect((await statusOf(alive))?.status).toBe('running');

    const audited = (await auditEvents(t, 'TOOL_CALL_FAILED')).filter((row) => row.resource_id === orphan);
    expect(audited).toHaveLength(1);
    expect(audited[0]!.details).toMatchObject({ error_code: 'interrupted', outcome: 'unknown', instance_id: gone });
    const notices = (await notificationsOf(t, 'LONG_RUNNING_TASK_COMPLETED')).filter((row) => (row.data as { execution_id?: string }).execution_id === orphan);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ user_id: analyst.user.id, data: { status: 'interrupted' } });

    // GET shows it to the requester as it is.
    const view = await t.app.inject({ url: `/api/v1/tools/${toolId}/executions/${orphan}`, headers: analyst.headers });
    expect(view.json()).toMatchObject({ status: 'interrupted' });
    // Never run again.
    expect(sink.calls).toHaveLength(0);
  });
});

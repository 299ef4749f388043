import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { upload, waitProcessed } from './helpers.js';

describe('documents: the pipeline survives a crash', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    // Jobs are not processed: the upload's job stays queued, as if the process died right after the commit.
    t = await buildTestApp({ processJobs: false });
    owner = await createUser(t);
  });
  afterAll(async () => {
    await t.close();
  });

  it('resumes a document left mid-pipeline by a dead worker from the database state, once', async () => {
    const response = await upload(t, owner, 'resume.md', '# Title\n\nFirst paragraph.\n\n## Part\n\nSecond paragraph.');
    expect(response.statusCode).toBe(202);
    const id = (response.json() as DocumentView).id;
    // A worker died in the middle of chunking an hour ago.
    await t.app.infra.database.db.execute(sql`update documents set status = 'chunking', progress = 0.5, stage_started_at = now() - interval '1 hour' where id = ${id}`);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${id}`, headers: owner.headers })).json().status).toBe('chunking');

    expect(await t.app.documents.resumeStalled()).toBe(1);
    // A second sweep before the job ran, and the upload's own job, are duplicates the pipeline absorbs.
    expect(await t.app.documents.resumeStalled()).toBe(1);
    await t.app.infra.jobs.start();
    const document = await waitProcessed(t, owner, id);
    expect(document).toMatchObject({ status: 'indexed', progress: 1, chunk_count: 2 });
    const [chunks] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from document_chunks where document_id = ${id}`);
    expect(chunks!.n).toBe(2);
    const indexed = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from audit_events where resource_id = ${id} and event_type = 'DOCUMENT_INDEXED'`);
    expect(indexed[0]!.n).toBe(1);
    // Nothing is stalled any more.
    expect(await t.app.documents.resumeStalled()).toBe(0);
  });

  it('reindexes in a new generation, replacing the passages', async () => {
    const response = await upload(t, owner, 'again.txt', 'One paragraph.\n\nAnother paragraph.');
    const id = (response.json() as DocumentView).id;
    await waitProcessed(t, owner, id);
    const before = await queryRows<{ id: string }>(t.app.infra.database.db, sql`select id from document_chunks where document_id = ${id}`);
    const reindex = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${id}/reindex`, headers: owner.headers });
    expect(reindex.statusCode).toBe(202);
    expect(reindex.json().status).toBe('queued');
    const document = await waitProcessed(t, owner, id);
    expect(document.status).toBe('indexed');
    const after = await queryRows<{ id: string }>(t.app.infra.database.db, sql`select id from document_chunks where document_id = ${id}`);
    expect(after).toHaveLength(before.length);
    expect(after.map((row) => row.id)).not.toEqual(before.map((row) => row.id));
  });
});

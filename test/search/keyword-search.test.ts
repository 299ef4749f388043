import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import { BM25_B, BM25_K1 } from '../../src/modules/documents/documents.search-sql.js';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { auditEvents } from '../helpers/audit.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from '../documents/helpers.js';

/** Uploads wait for the real pipeline; the first one of an app starts its parser threads, slow on a loaded machine. */
const FIRST_UPLOAD_MS = 90_000;

interface Hit {
  chunk_id: string;
  document_id: string;
  document_title: string;
  label: string;
  text: string;
  highlights: { start: number; end: number }[];
  score: number;
  scores: { keyword?: number; vector?: number };
}

async function search(t: TestApp, user: TestUser, payload: Record<string, unknown>) {
  const response = await t.app.inject({ method: 'POST', url: '/api/v1/documents/search', headers: user.headers, payload });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { items: Hit[]; mode_used: string; mode_reason: string | null; took_ms: number };
}

// Uploads go through the real pipeline (worker threads); on a loaded machine the set-up needs more than the default hook time.
/** The statistics recomputed from the passages themselves: what the triggers must have kept. */
async function recomputedStats(t: TestApp) {
  const db = t.app.infra.database.db;
  const [kept] = await queryRows<{ chunks: number; terms: number }>(db, sql`select chunk_count::int as chunks, term_count::int as terms from search_corpus_stats where id = 1`);
  const [actual] = await queryRows<{ chunks: number; terms: number }>(db, sql`select count(*)::int as chunks, coalesce(sum(term_count), 0)::int as terms from document_chunks`);
  const [termDiff] = await queryRows<{ n: number }>(
    db,
    sql`select count(*)::int as n from (
          (select term, chunk_frequency from search_term_stats
           except select v.lexeme, count(*)::int from document_chunks c, unnest(c.search_vector) v group by v.lexeme)
          union all
          (select v.lexeme, count(*)::int from document_chunks c, unnest(c.search_vector) v group by v.lexeme
           except select term, chunk_frequency from search_term_stats)
        ) d`,
  );
  const [postingDiff] = await queryRows<{ n: number }>(
    db,
    sql`select (select count(*) from search_postings)::int - (select count(*) from document_chunks c, unnest(c.search_vector) v)::int as n`,
  );
  return { kept, actual, termDiff: termDiff!.n, postingDiff: postingDiff!.n };
}

describe('keyword search: BM25 against a hand computation', () => {
  let t: TestApp;
  let owner: TestUser;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await createUser(t);
    // One passage each; the lexemes are obvious: appl, banana, cherri, date.
    const texts = { a: 'apple banana apple', b: 'banana cherry', c: 'cherry cherry cherry date', d: 'date' };
    for (const [name, text] of Object.entries(texts)) {
      ids[name] = (await uploadIndexed(t, owner, `${name}.txt`, text, { title: `doc ${name}` }, FIRST_UPLOAD_MS)).id;
    }
  }, 240_000);
  afterAll(async () => {
    await t.close();
  });

  it('scores every passage with BM25 exactly as computed by hand', async () => {
    // N = 4 passages, lengths 3, 2, 4, 1: avgdl = 2.5. Query "apples and cherries" → lexemes appl, cherri.
    const n = 4;
    const avgdl = 2.5;
    const idf = (df: number) => Math.log(1 + (n - df + 0.5) / (df + 0.5));
    const term = (tf: number, dl: number) => (tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + (BM25_B * dl) / avgdl));
    const expected: Record<string, number> = {
      a: idf(1) * term(2, 3),
      b: idf(2) * term(1, 2),
      c: idf(2) * term(3, 4),
    };
    const result = await search(t, owner, { query: 'apples and cherries', mode: 'keyword' });
    expect(result.mode_used).toBe('keyword');
    const scores = Object.fromEntries(result.items.map((item) => [item.document_id, item.score]));
    expect(Object.keys(scores).sort()).toEqual([ids.a, ids.b, ids.c].sort());
    for (const name of ['a', 'b', 'c']) {
      expect(scores[ids[name]!]).toBeCloseTo(expected[name]!, 9);
    }
    // Ordered by score, and the per-method score is the keyword one.
    const ordered = [...result.items].sort((x, y) => y.score - x.score);
    expect(result.items.map((item) => item.chunk_id)).toEqual(ordered.map((item) => item.chunk_id));
    expect(result.items[0]!.scores.keyword).toBe(result.items[0]!.score);
    // Saturation: three cherries in a longer passage beat one in a shorter one, by less than three times.
    expect(scores[ids.c!]! / scores[ids.b!]!).toBeGreaterThan(1);
    expect(scores[ids.c!]! / scores[ids.b!]!).toBeLessThan(3);
  });

  it('highlights the words that matched, as offsets into the text', async () => {
    const result = await search(t, owner, { query: 'apples', mode: 'keyword' });
    expect(result.items).toHaveLength(1);
    const [hit] = result.items;
    expect(hit!.highlights.map(({ start, end }) => hit!.text.slice(start, end))).toEqual(['apple', 'apple']);
    expect(hit!.document_title).toBe('doc a');
  });

  it('indexes a document whose title is as long as allowed (its notification title is shortened)', async () => {
    const title = `Long ${'title '.repeat(59)}`.slice(0, 300);
    const document = await uploadIndexed(t, owner, 'long.txt', 'elderberry', { title }, FIRST_UPLOAD_MS);
    expect(document).toMatchObject({ status: 'indexed', title: title.trim() });
    expect((await search(t, owner, { query: 'elderberry' })).items.map((item) => item.document_title)).toEqual([title.trim()]);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${document.id}`, headers: owner.headers })).statusCode).toBe(204);
  });

  it('a query of stop words only finds nothing (and is not an error)', async () => {
    const result = await search(t, owner, { query: 'the and of', mode: 'keyword' });
    expect(result.items).toEqual([]);
  });

  it('keeps the statistics exact through deletes and reindexing', async () => {
    expect(await recomputedStats(t)).toMatchObject({ kept: { chunks: 4, terms: 10 }, termDiff: 0, postingDiff: 0 });
    const extra = await uploadIndexed(t, owner, 'extra.txt', 'apple pie with cherry and a unique quinceword', { title: 'extra' }, FIRST_UPLOAD_MS);
    let stats = await recomputedStats(t);
    expect(stats.kept).toEqual(stats.actual);
    expect(stats).toMatchObject({ termDiff: 0, postingDiff: 0 });
    expect((await search(t, owner, { query: 'quinceword' })).items).toHaveLength(1);

    const reindexed = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${extra.id}/reindex`, headers: owner.headers });
    expect(reindexed.statusCode).toBe(202);
    await uploadIndexed(t, owner, 'extra.txt', 'apple pie with cherry and a unique quinceword', {}, FIRST_UPLOAD_MS);
    stats = await recomputedStats(t);
    expect(stats.kept).toEqual(stats.actual);
    expect(stats).toMatchObject({ termDiff: 0, postingDiff: 0 });

    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${extra.id}`, headers: owner.headers })).statusCode).toBe(204);
    stats = await recomputedStats(t);
    expect(stats).toMatchObject({ kept: { chunks: 4, terms: 10 }, termDiff: 0, postingDiff: 0 });
    // The deleted document's own vocabulary is gone from the statistics too.
    const [left] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from search_term_stats where term like ${'quince%'}`);
    expect(left!.n).toBe(0);
    expect((await search(t, owner, { query: 'quinceword' })).items).toEqual([]);
  });
});

describe('keyword search: authorization inside the ranking query', () => {
  let t: TestApp;
  let owner: TestUser;
  let analyst: TestUser;
  let manager: TestUser;
  let admin: TestUser;
  const documents: DocumentView[] = [];

  beforeAll(async () => {
    t = await buildTestApp();
    owner = await createUser(t);
    analyst = await createUser(t);
    manager = await createUser(t, { role: 'MANAGER' });
    admin = await createUser(t, { role: 'ADMIN' });
    // 12 private documents that mention "budget" many times (they would rank first), 6 readable ones that mention it once.
    for (let i = 0; i < 12; i += 1) {
      documents.push(await uploadIndexed(t, owner, `private-${i}.txt`, `budget budget budget forecast number ${i}`, { title: `private ${i}`, tags: 'finance' }, FIRST_UPLOAD_MS));
    }
    for (let i = 0; i < 6; i += 1) {
      documents.push(await uploadIndexed(t, owner, `public-${i}.txt`, `the budget and a long passage about other things entirely, item ${i}`, { title: `shared ${i}`, visibility: 'organization', tags: i < 3 ? 'finance' : 'other' }, FIRST_UPLOAD_MS));
    }
    documents.push(await uploadIndexed(t, owner, 'confidential.txt', 'budget budget budget budget for the board', { title: 'board budget', visibility: 'organization', label: 'CONFIDENTIAL' }, FIRST_UPLOAD_MS));
  }, 240_000);
  afterAll(async () => {
    await t.close();
  });

  it('fills top_k with readable passages when better-scoring ones are hidden, and different clearances see different results', async () => {
    const asAnalyst = await search(t, analyst, { query: 'budget', top_k: 5 });
    expect(asAnalyst.items).toHaveLength(5);
    expect(asAnalyst.items.every((item) => item.document_title.startsWith('shared'))).toBe(true);

    const asManager = await search(t, manager, { query: 'budget', top_k: 5 });
    expect(asManager.items).toHaveLength(5);
    // The CONFIDENTIAL passage is within a manager's clearance and outranks the rest.
    expect(asManager.items[0]!.document_title).toBe('board budget');
    expect(asManager.items[0]!.label).toBe('CONFIDENTIAL');
    expect(asAnalyst.items.some((item) => item.label === 'CONFIDENTIAL')).toBe(false);

    // Administrators manage metadata; they read content like anyone else (not the owner's private documents).
    const asAdmin = await search(t, admin, { query: 'budget', top_k: 50 });
    expect(asAdmin.items.map((item) => item.document_title).sort()).toEqual(['board budget', ...[0, 1, 2, 3, 4, 5].map((i) => `shared ${i}`)].sort());

    const asOwner = await search(t, owner, { query: 'budget', top_k: 50 });
    expect(asOwner.items).toHaveLength(documents.length);
  });

  it('keeps top_k full under restrictive filters, and filters never widen access', async () => {
    const byTag = await search(t, analyst, { query: 'budget', top_k: 3, filters: { tags: ['finance'] } });
    expect(byTag.items.map((item) => item.document_title).sort()).toEqual(['shared 0', 'shared 1', 'shared 2']);

    const privateIds = documents.filter((document) => document.visibility === 'private').map((document) => document.id);
    const byIds = await search(t, analyst, { query: 'budget', filters: { document_ids: [...privateIds, documents[12]!.id] } });
    expect(byIds.items.map((item) => item.document_id)).toEqual([documents[12]!.id]);

    const byOwner = await search(t, analyst, { query: 'budget', top_k: 50, filters: { owner_id: owner.user.id, labels: ['INTERNAL'] } });
    expect(byOwner.items).toHaveLength(6);
    const byLabel = await search(t, manager, { query: 'budget', top_k: 50, filters: { labels: ['CONFIDENTIAL'] } });
    expect(byLabel.items.map((item) => item.document_title)).toEqual(['board budget']);
  });

  it('answers with the same shape whatever others hold: nothing reveals their documents', async () => {
    const nothing = await search(t, analyst, { query: 'forecast' });
    // Only private documents say "forecast": the analyst gets an empty list, exactly as for a word nobody wrote.
    const absent = await search(t, analyst, { query: 'xylophonic' });
    expect(nothing).toMatchObject({ items: [], mode_used: 'keyword' });
    expect(Object.keys(nothing).sort()).toEqual(Object.keys(absent).sort());
  });

  it('audits DOCUMENT_SEARCHED with the mode, the result documents and the query digest, not its text', async () => {
    await search(t, analyst, { query: 'budget secrets', top_k: 2 });
    const events = await auditEvents(t, 'DOCUMENT_SEARCHED');
    const event = events.find((candidate) => candidate.details.query_sha256 === createHash('sha256').update('budget secrets').digest('hex'));
    expect(event).toBeDefined();
    expect(event!.user_id).toBe(analyst.user.id);
    expect(event!.details).toMatchObject({ mode: 'keyword', mode_used: 'keyword', top_k: 2, result_count: 2 });
    expect((event!.details.document_ids as string[]).length).toBe(2);
    expect(JSON.stringify(event!.details)).not.toContain('secrets');
  });

  it('vector and hybrid fall back to keyword and say why', async () => {
    const result = await search(t, analyst, { query: 'budget', mode: 'hybrid', top_k: 2 });
    expect(result.mode_used).toBe('keyword');
    expect(result.mode_reason).toMatch(/unavailable/);
    expect(result.items).toHaveLength(2);
  });

  it('refuses bad requests with 422', async () => {
    for (const payload of [{ query: '' }, { query: 'x', top_k: 51 }, { query: 'x', top_k: 0 }, { query: 'x', mode: 'fuzzy' }, { query: 'x', filters: { labels: ['SECRET'] } }, { query: 'x', filters: { document_ids: ['nope'] } }]) {
      const response = await t.app.inject({ method: 'POST', url: '/api/v1/documents/search', headers: analyst.headers, payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
    }
  });

  it('the access log says who searched, read and downloaded, to the owner without what else they found', async () => {
    const shared = documents[13]!;
    await search(t, analyst, { query: 'passage about other things item 1', top_k: 1 });
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/text`, headers: analyst.headers })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/file`, headers: manager.headers })).statusCode).toBe(200);

    const log = await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/access-log?limit=2`, headers: owner.headers });
    expect(log.statusCode).toBe(200);
    const page = log.json() as { items: { action: string; user_id: string; details?: unknown }[]; next_cursor: string | null };
    expect(page.items.map((item) => [item.action, item.user_id])).toEqual([
      ['downloaded', manager.user.id],
      ['read', analyst.user.id],
    ]);
    expect(page.items.every((item) => item.details === undefined)).toBe(true);
    const next = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/access-log?cursor=${page.next_cursor}`, headers: owner.headers })).json() as { items: { action: string; user_id: string }[] };
    expect(next.items.some((item) => item.action === 'searched' && item.user_id === analyst.user.id)).toBe(true);

    // An auditor sees the whole events; an analyst who read it is not its owner: 404.
    const audited = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/access-log`, headers: manager.headers })).json() as { items: { details?: Record<string, unknown> }[] };
    expect(audited.items[0]!.details).toBeDefined();
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${shared.id}/access-log`, headers: analyst.headers })).statusCode).toBe(404);
  });

  it('gives other modules readable passages by id and a pinned document’s passages, 404 for anything else', async () => {
    const readable = await search(t, analyst, { query: 'budget', top_k: 2 });
    const actor = { userId: analyst.user.id, username: analyst.user.username, role: 'ANALYST' as const, sessionId: '', clearance: 'INTERNAL' as const };
    const context = { ipAddress: null, userAgent: null, requestId: null };
    const passages = await t.app.documents.passagesByIds(actor, readable.items.map((item) => item.chunk_id), context);
    expect(passages.map((passage) => passage.text)).toEqual(readable.items.map((item) => item.text));

    const hidden = (await search(t, owner, { query: 'forecast', top_k: 1 })).items[0]!;
    await expect(t.app.documents.passagesByIds(actor, [readable.items[0]!.chunk_id, hidden.chunk_id], context)).rejects.toMatchObject({ status: 404 });
    await expect(t.app.documents.documentPassages(actor, hidden.document_id, { limit: 10 }, context)).rejects.toMatchObject({ status: 404 });
    await expect(t.app.documents.documentPassages(actor, 'not-a-uuid', { limit: 10 }, context)).rejects.toMatchObject({ status: 404 });
    const pinned = await t.app.documents.documentPassages(actor, documents[13]!.id, { limit: 10 }, context);
    expect(pinned).toHaveLength(1);
    expect(pinned[0]).toMatchObject({ document_id: documents[13]!.id, document_title: 'shared 1', label: 'INTERNAL', index: 0 });
  });
});

describe('keyword search: permissions count from the next query, on every instance', () => {
  let t: TestApp;
  let second: TestApp;
  let owner: TestUser;
  let reader: TestUser;

  beforeAll(async () => {
    t = await buildTestApp();
    second = await buildTestApp({ share: t });
    owner = await createUser(t);
    reader = await createUser(t);
  }, 240_000);
  afterAll(async () => {
    await second.close();
    await t.close();
  });

  it('a deleted, unshared or relabelled document disappears from results at once on the other instance', async () => {
    const document = await uploadIndexed(t, owner, 'roadmap.txt', 'the product roadmap for next year', { title: 'roadmap' }, FIRST_UPLOAD_MS);
    const share = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${document.id}/shares`, headers: owner.headers, payload: { user_id: reader.user.id } });
    expect(share.statusCode).toBe(201);
    const onSecond = async () => (await search(second, reader, { query: 'roadmap' })).items.map((item) => item.document_id);
    expect(await onSecond()).toEqual([document.id]);

    expect((await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${document.id}`, headers: owner.headers, payload: { label: 'CONFIDENTIAL' } })).statusCode).toBe(200);
    expect(await onSecond()).toEqual([]);

    const other = await uploadIndexed(t, owner, 'roadmap2.txt', 'another roadmap, for the team', { title: 'roadmap 2', visibility: 'organization' }, FIRST_UPLOAD_MS);
    expect(await onSecond()).toEqual([other.id]);
    const shared = await t.app.inject({ method: 'POST', url: `/api/v1/documents/${other.id}/shares`, headers: owner.headers, payload: { user_id: reader.user.id } });
    expect((await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${other.id}`, headers: owner.headers, payload: { visibility: 'private' } })).statusCode).toBe(200);
    expect(await onSecond()).toEqual([other.id]);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${other.id}/shares/${shared.json().id}`, headers: owner.headers })).statusCode).toBe(204);
    expect(await onSecond()).toEqual([]);

    expect((await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${other.id}`, headers: owner.headers, payload: { visibility: 'organization' } })).statusCode).toBe(200);
    expect(await onSecond()).toEqual([other.id]);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${other.id}`, headers: owner.headers })).statusCode).toBe(204);
    expect(await onSecond()).toEqual([]);
    expect((await search(second, owner, { query: 'roadmap' })).items.map((item) => item.document_id)).toEqual([document.id]);
  }, 120_000);
});

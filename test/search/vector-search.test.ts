import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, usingPostgres, type TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/eventually.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, type MockLlm } from '../mock-llm/server.js';
import { uploadIndexed, waitProcessed } from '../documents/helpers.js';

/** Uploads wait for the real pipeline; the first one of an app starts its parser threads, slow on a loaded machine. */
const FIRST_UPLOAD_MS = 90_000;

interface SearchResponse {
  items: { chunk_id: string; document_id: string; document_title: string; text: string; score: number; scores: { keyword?: number; vector?: number } }[];
  mode_used: string;
  mode_reason: string | null;
}

async function search(t: TestApp, user: TestUser, payload: Record<string, unknown>): Promise<SearchResponse> {
  const response = await t.app.inject({ method: 'POST', url: '/api/v1/documents/search', headers: user.headers, payload });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as SearchResponse;
}

function embeddedTexts(mock: MockLlm): string[] {
  return mock.embeddingRequests().flatMap((request) => {
    const input = (request.body as { input?: unknown }).input;
    return Array.isArray(input) ? input.map(String) : [String(input)];
  });
}

const TOPICS = {
  whales: 'Blue whales migrate across the ocean every year, feeding on krill in cold waters.',
  volcano: 'The volcano erupted with lava flows and ash clouds over the mountain villages.',
  bakery: 'Our bakery makes sourdough bread, croissants and pastries every morning.',
};

describe.skipIf(usingPostgres)('vector and hybrid search with a local embedding model (pgvector, embedded database)', () => {
  let mock: MockLlm;
  let t: TestApp;
  let owner: TestUser;
  const documents: Record<string, DocumentView> = {};

  beforeAll(async () => {
    mock = await startMockLlm({ embeddingDimensions: 128 });
    t = await buildTestApp({ env: { OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed' } });
    owner = await createUser(t);
    for (const [name, text] of Object.entries(TOPICS)) documents[name] = await uploadIndexed(t, owner, `${name}.txt`, text, { title: name, label: name === 'volcano' ? 'CONFIDENTIAL' : 'INTERNAL' }, FIRST_UPLOAD_MS);
  }, 240_000);
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it('embeds every passage through Ollama’s /api/embed, whatever the label (the model is local)', () => {
    for (const document of Object.values(documents)) expect(document).toMatchObject({ status: 'indexed', vector_indexed: true, vector_reason: null });
    expect(embeddedTexts(mock)).toEqual(expect.arrayContaining([TOPICS.volcano]));
    expect(mock.embeddingRequests()[0]!.body).toMatchObject({ model: 'mock-embed' });
  });

  it('vector mode ranks by cosine similarity, hybrid fuses both lists by RRF', async () => {
    const vector = await search(t, owner, { query: 'whales feeding on krill', mode: 'vector', top_k: 3 });
    expect(vector.mode_used).toBe('vector');
    expect(vector.items[0]!.document_title).toBe('whales');
    expect(vector.items[0]!.scores.vector).toBeCloseTo(vector.items[0]!.score, 12);
    expect(vector.items.map((item) => item.score)).toEqual([...vector.items.map((item) => item.score)].sort((a, b) => b - a));

    const hybrid = await search(t, owner, { query: 'sourdough croissants', top_k: 3 });
    expect(hybrid.mode_used).toBe('hybrid');
    expect(hybrid.items[0]!.document_title).toBe('bakery');
    expect(hybrid.items[0]!.scores.keyword).toBeGreaterThan(0);
    expect(hybrid.items[0]!.scores.vector).toBeGreaterThan(0);
    // First in both lists: 1/61 + 1/61.
    expect(hybrid.items[0]!.score).toBeCloseTo(2 / 61, 12);
  });

  it('keeps authorization inside the vector query: another user finds only what they may read', async () => {
    const other = await createUser(t);
    expect((await search(t, other, { query: 'whales', mode: 'vector', top_k: 5 })).items).toEqual([]);
    await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${documents.whales!.id}`, headers: owner.headers, payload: { visibility: 'organization' } });
    await t.app.inject({ method: 'PATCH', url: `/api/v1/documents/${documents.volcano!.id}`, headers: owner.headers, payload: { visibility: 'organization' } });
    const found = await search(t, other, { query: 'lava and ash', mode: 'vector', top_k: 5 });
    // The CONFIDENTIAL volcano is nearest, but above an analyst's clearance: only the whales come back.
    expect(found.items.map((item) => item.document_title)).toEqual(['whales']);
  });

  it('a failed embedding leaves the document in keyword search with the reason, and the sweep embeds it later', async () => {
    mock.embeddings.status = 500;
    const failed = await uploadIndexed(t, owner, 'glaciers.txt', 'Glaciers carve valleys as they slowly retreat.', { title: 'glaciers' }, FIRST_UPLOAD_MS);
    expect(failed).toMatchObject({ status: 'indexed', vector_indexed: false });
    expect(failed.vector_reason).toMatch(/embedding failed/);
    expect((await search(t, owner, { query: 'glaciers', mode: 'keyword' })).items).toHaveLength(1);
    mock.embeddings.status = null;
    expect(await t.app.documents.embedPending()).toBeGreaterThanOrEqual(1);
    await eventually(async () => (await waitProcessed(t, owner, failed.id)).vector_indexed, 10_000);
    const vectors = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from document_chunk_vectors where document_id = ${failed.id}::uuid`);
    expect(vectors[0]!.n).toBe(1);
  });

  it('a new EMBEDDING_MODEL re-embeds every document in the background; meanwhile they are found by keyword', async () => {
    const second = await buildTestApp({ share: t, env: { OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed-v2' } });
    try {
      await eventually(async () => {
        const rows = await queryRows<{ n: number }>(second.app.infra.database.db, sql`select count(*)::int as n from documents where vector_model is distinct from 'ollama/mock-embed-v2'`);
        return rows[0]!.n === 0;
      }, 15_000);
      expect(mock.embeddingRequests().some((request) => (request.body as { model?: string }).model === 'mock-embed-v2')).toBe(true);
      const [count] = await queryRows<{ chunks: number; vectors: number }>(second.app.infra.database.db, sql`select (select count(*)::int from document_chunks) as chunks, (select count(*)::int from document_chunk_vectors) as vectors`);
      expect(count!.vectors).toBe(count!.chunks);
      expect((await search(second, owner, { query: 'volcano lava', mode: 'vector', top_k: 1 })).items[0]!.document_title).toBe('volcano');
    } finally {
      await second.close();
    }
  });

  it('deleting a document deletes its vectors', async () => {
    const doomed = await uploadIndexed(t, owner, 'doomed.txt', 'A passage about tectonic plates.', { title: 'doomed' }, FIRST_UPLOAD_MS);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${doomed.id}`, headers: owner.headers })).statusCode).toBe(204);
    const [left] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from document_chunk_vectors where document_id = ${doomed.id}::uuid`);
    expect(left!.n).toBe(0);
  });
});

describe.skipIf(usingPostgres)('a cloud embedding model gets redacted text and nothing above CLOUD_MAX_LABEL', () => {
  let mock: MockLlm;
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    mock = await startMockLlm({ embeddingDimensions: 64 });
    t = await buildTestApp({ env: { OPENAI_BASE_URL: `${mock.url}/v1`, OPENAI_API_KEY: 'sk-test-embeddings', EMBEDDING_MODEL: 'openai/text-embedding-3-small', CLOUD_MAX_LABEL: 'INTERNAL' } });
    owner = await createUser(t);
  }, 240_000);
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it('sends INTERNAL passages redacted, in OpenAI’s /v1/embeddings format', async () => {
    const document = await uploadIndexed(t, owner, 'contacts.txt', 'Write to jane.doe@example.com about the harbour project.', { title: 'contacts', label: 'INTERNAL' }, FIRST_UPLOAD_MS);
    expect(document).toMatchObject({ vector_indexed: true, vector_reason: null });
    const sent = embeddedTexts(mock);
    expect(sent.some((text) => text.includes('harbour project'))).toBe(true);
    expect(sent.join('\n')).not.toContain('jane.doe@example.com');
    expect(sent.join('\n')).toContain('[EMAIL_1]');
    const request = mock.embeddingRequests()[0]!;
    expect(request.headers.authorization).toBe('Bearer sk-test-embeddings');
    expect(request.body).toMatchObject({ model: 'text-embedding-3-small', encoding_format: 'float' });
  }, 120_000);

  it('never sends CONFIDENTIAL or RESTRICTED passages; the document says it is keyword-only and why', async () => {
    const before = mock.embeddingRequests().length;
    for (const label of ['CONFIDENTIAL', 'RESTRICTED']) {
      const marker = `marker${label.toLowerCase()}${Date.now()}`;
      const document = await uploadIndexed(t, owner, `${label}.txt`, `The merger plan ${marker} stays inside.`, { title: label, label }, FIRST_UPLOAD_MS);
      expect(document).toMatchObject({ status: 'indexed', vector_indexed: false });
      expect(document.vector_reason).toMatch(new RegExp(`${label} content is above CLOUD_MAX_LABEL=INTERNAL`));
      expect(embeddedTexts(mock).join('\n')).not.toContain(marker);
      expect((await search(t, owner, { query: marker, mode: 'keyword' })).items).toHaveLength(1);
    }
    expect(mock.embeddingRequests().length).toBe(before);
  });

  it('an auto-classification that raises the label keeps the passages away from the cloud model too', async () => {
    const card = '4111 1111 1111 1111';
    const document = await uploadIndexed(t, owner, 'card.txt', `Customer card ${card} for the refund.`, { title: 'card', label: 'INTERNAL' }, FIRST_UPLOAD_MS);
    expect(document.label).toBe('CONFIDENTIAL');
    expect(document.vector_indexed).toBe(false);
    expect(embeddedTexts(mock).join('\n')).not.toContain('4111');
  });

  it('redacts the query before it is embedded by the cloud model', async () => {
    await search(t, owner, { query: 'mail jane.doe@example.com', mode: 'vector' });
    const last = embeddedTexts(mock).at(-1)!;
    expect(last).not.toContain('jane.doe@example.com');
    expect(last).toContain('[EMAIL_1]');
  });
});

describe('without pgvector, vector and hybrid search fall back to keyword and say why', () => {
  let mock: MockLlm;
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    mock = await startMockLlm();
    t = await buildTestApp({ env: { OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed' } });
    owner = await createUser(t);
  }, 240_000);
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it.runIf(usingPostgres)('reports the missing extension on documents and in mode_used, and sends nothing to the model', async () => {
    expect(t.app.infra.vectorSearch).toBe('unavailable');
    const document = await uploadIndexed(t, owner, 'plain.txt', 'Keyword search still finds the harbour.', { title: 'plain' }, FIRST_UPLOAD_MS);
    expect(document).toMatchObject({ status: 'indexed', vector_indexed: false });
    expect(document.vector_reason).toMatch(/pgvector/);
    for (const mode of ['vector', 'hybrid']) {
      const result = await search(t, owner, { query: 'harbour', mode });
      expect(result.mode_used).toBe('keyword');
      expect(result.mode_reason).toMatch(/pgvector/);
      expect(result.items).toHaveLength(1);
    }
    expect(mock.embeddingRequests()).toEqual([]);
  }, 120_000);

  it.runIf(!usingPostgres)('the embedded database has pgvector', () => {
    expect(t.app.infra.vectorSearch).toBe('available');
  });
});

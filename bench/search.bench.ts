/**
 * Search benchmarks (CONTRACT §7):
 *
 * 1. Quality on SciFact (BEIR, train split: 5,183 abstracts, 809 claims): nDCG@10 and recall@100 of keyword (BM25)
 *    search and of hybrid search. Target: keyword nDCG@10 >= 0.66 (BM25's published level on the test split). Hybrid
 *    uses EMBEDDING_MODEL when it is set (with its provider's URL), else the test mock's deterministic hashed
 *    word/trigram vectors (not a semantic model: it measures the fusion and the plumbing, not a model).
 * 2. Latency with 100,000 generated passages (with mock vectors on the embedded database; keyword only where there is
 *    no pgvector): keyword and hybrid p50/p99 with the authorization predicate and the same query without it, in the
 *    same run (ABBA order). Target: authorized <= 1.5x. Then filtered vector recall@10 of the HNSW search (iterative
 *    scans) against exact search for a reader who may read 10% of the passages (target >= 0.95), and its latency.
 *
 *   npx tsx bench/search.bench.ts [--scifact DIR]                 # embedded PGlite (in memory)
 *   DATABASE_URL=postgres://... npx tsx bench/search.bench.ts      # a scratch database on that server, dropped after
 *
 * The dataset is read from --scifact DIR or SCIFACT_DIR (default ../shared/datasets/scifact relative to the
 * checkout); it is never copied into the repository. BENCH_CHUNKS (default 100000) and BENCH_QUERIES (default 200)
 * size the latency part; BENCH_PARTS=quality,latency selects parts.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sql, type SQL } from 'drizzle-orm';
import { queryRows } from '../src/db/client.js';
import type { Actor } from '../src/modules/auth/permissions.js';
import { contentReadableSql } from '../src/modules/documents/documents.policy.js';
import { createDocumentsRepository } from '../src/modules/documents/documents.repository.js';
import { queryLexemes, rankKeyword } from '../src/modules/documents/documents.search-sql.js';
import { chunkContentAad, documentContentAad } from '../src/modules/documents/documents.service.js';
import { fuseRrf } from '../src/modules/documents/documents.search.js';
import { createVectorTable, EXACT_SCAN_MAX_VECTORS, rankVector, vectorLiteral } from '../src/modules/documents/documents.vectors.js';
import { buildTestApp, type TestApp } from '../test/helpers/app.js';
import { mockEmbedding, startMockLlm } from '../test/mock-llm/server.js';
import { percentile } from './lib/http-load.js';

const CONTEXT = { ipAddress: null, userAgent: null, requestId: 'bench' };
const PARTS = new Set((process.env.BENCH_PARTS ?? 'quality,latency').split(','));
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 100_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
/** The mock's vectors are cheap to make in process; 64 dimensions keep 100,000 of them quick to load. */
const DIMENSIONS = 64;

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

function datasetDir(): string {
  return argument('--scifact') ?? process.env.SCIFACT_DIR ?? path.resolve(process.cwd(), '..', '..', 'shared', 'datasets', 'scifact');
}

function readJsonl<T>(file: string): T[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

async function actorOf(t: TestApp, username: string, role: Actor['role'] = 'ANALYST'): Promise<Actor> {
  const user = await t.app.users.createUser(null, { username, email: `${username}@example.test`, password: `Pw-${randomUUID()}`, fullName: null, role }, { origin: 'cli' });
  return { userId: user.id, username, role, sessionId: '', clearance: role === 'ANALYST' ? 'INTERNAL' : 'CONFIDENTIAL' };
}

function ndcgAt(ranked: string[], relevant: Set<string>, k: number): number {
  let dcg = 0;
  ranked.slice(0, k).forEach((id, i) => {
    if (relevant.has(id)) dcg += 1 / Math.log2(i + 2);
  });
  let ideal = 0;
  for (let i = 0; i < Math.min(k, relevant.size); i += 1) ideal += 1 / Math.log2(i + 2);
  return ideal === 0 ? 0 : dcg / ideal;
}

function recallAt(ranked: string[], relevant: Set<string>, k: number): number {
  const top = new Set(ranked.slice(0, k));
  return [...relevant].filter((id) => top.has(id)).length / relevant.size;
}

/** Passages ranked by a method → documents in order of their best passage. */
function documentsOf(passages: { documentId: string }[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const passage of passages) {
    if (!seen.has(passage.documentId)) {
      seen.add(passage.documentId);
      out.push(passage.documentId);
    }
  }
  return out;
}

async function quality(): Promise<void> {
  const dir = datasetDir();
  if (!fs.existsSync(path.join(dir, 'corpus.jsonl'))) {
    console.log(`quality: SciFact not found in ${dir} (pass --scifact DIR or SCIFACT_DIR); skipped`);
    return;
  }
  const corpus = readJsonl<{ _id: string; title: string; text: string }>(path.join(dir, 'corpus.jsonl'));
  const queries = new Map(readJsonl<{ _id: string; text: string }>(path.join(dir, 'queries-train.jsonl')).map((query) => [query._id, query.text]));
  const qrels = new Map<string, Set<string>>();
  for (const line of fs.readFileSync(path.join(dir, 'qrels-train.tsv'), 'utf8').split('\n').slice(1)) {
    const [queryId, corpusId, score] = line.trim().split('\t');
    if (!queryId || !corpusId || Number(score) <= 0) continue;
    if (!qrels.has(queryId)) qrels.set(queryId, new Set());
    qrels.get(queryId)!.add(corpusId);
  }

  const configured = process.env.EMBEDDING_MODEL;
  const mock = configured ? undefined : await startMockLlm({ embeddingDimensions: 256 });
  const env: Record<string, string> = mock ? { OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed' } : {};
  const t = await buildTestApp({ processJobs: false, env: { LOG_LEVEL: 'warn', ...env } });
  try {
    const owner = await actorOf(t, 'scifact_owner');
    const corpusIdOf = new Map<string, string>();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        while (next < corpus.length) {
          const entry = corpus[next++]!;
          const { document } = await t.app.documents.upload(owner, { filename: `${entry._id}.txt`, bytes: Buffer.from(`${entry.title}\n\n${entry.text}`), title: entry.title.slice(0, 300) || entry._id }, CONTEXT);
          corpusIdOf.set(document.id, entry._id);
          await t.app.documents.processNow(document.id);
        }
      }),
    );
    const ingestSeconds = (performance.now() - started) / 1000;
    const [stats] = await queryRows<{ chunks: number }>(t.app.infra.database.db, sql`select chunk_count::int as chunks from search_corpus_stats`);
    console.log(`quality: ${corpus.length} SciFact abstracts → ${stats!.chunks} passages through the pipeline in ${ingestSeconds.toFixed(0)} s`);

    const db = t.app.infra.database.db;
    const visible = contentReadableSql(owner);
    const vectorsReady = t.app.infra.vectorSearch === 'available';
    const [embedded] = vectorsReady ? await queryRows<{ n: number }>(db, sql`select count(*)::int as n from documents where vector_indexed`) : [{ n: 0 }];
    const model = configured ?? 'ollama/mock-embed (deterministic hashed word/trigram vectors from test/mock-llm)';
    const methods = { keyword: { ndcg: 0, recall: 0, ms: [] as number[] }, vector: { ndcg: 0, recall: 0, ms: [] as number[] }, hybrid: { ndcg: 0, recall: 0, ms: [] as number[] } };
    let judged = 0;
    const score = (method: keyof typeof methods, ranked: { documentId: string }[], relevant: Set<string>) => {
      const documents = documentsOf(ranked).map((id) => corpusIdOf.get(id)!);
      methods[method].ndcg += ndcgAt(documents, relevant, 10);
      methods[method].recall += recallAt(documents, relevant, 100);
    };
    const embedQuery = async (text: string) => {
      const response = await fetch(mock ? `${mock.url}/api/embed` : 'http://invalid', { method: 'POST', body: JSON.stringify({ model: 'mock-embed', input: [text] }) });
      return ((await response.json()) as { embeddings: number[][] }).embeddings[0]!;
    };
    for (const [queryId, relevant] of qrels) {
      const text = queries.get(queryId);
      if (!text) continue;
      let before = performance.now();
      const lexemes = await queryLexemes(db, text);
      const keyword = await rankKeyword(db, lexemes, visible, undefined, 300);
      methods.keyword.ms.push(performance.now() - before);
      score('keyword', keyword, relevant);
      if (vectorsReady && embedded!.n > 0) {
        before = performance.now();
        const vector = mock ? await rankVector(db, await embedQuery(text), visible, undefined, 300, 'auto') : [];
        methods.vector.ms.push(performance.now() - before);
        score('vector', vector, relevant);
        score('hybrid', fuseRrf([keyword, vector]), relevant);
      }
      judged += 1;
    }
    for (const [name, method] of Object.entries(methods)) {
      if (name !== 'keyword' && !(vectorsReady && embedded!.n > 0)) continue;
      const ms = [...method.ms].sort((a, b) => a - b);
      console.log(
        `quality: ${name.padEnd(7)} over ${judged} train claims: nDCG@10 ${(method.ndcg / judged).toFixed(4)}, recall@100 ${(method.recall / judged).toFixed(4)}` +
          (name === 'keyword' ? ` (BM25 k1=0.9 b=0.4; target nDCG@10 >= 0.66); ranking p50 ${percentile(ms, 50).toFixed(1)} ms p99 ${percentile(ms, 99).toFixed(1)} ms` : name === 'vector' ? ` (${model})` : ' (RRF k=60 of keyword and vector)'),
      );
    }
    if (!vectorsReady) console.log('quality: hybrid not measured: the database has no pgvector');
  } finally {
    await t.close();
    await mock?.close();
  }
}

/** A deterministic Zipf-distributed vocabulary of made-up words (so the English stemmer leaves them distinct). */
function vocabulary(size: number, seed: number): { words: string[]; draw: () => string } {
  let state = seed >>> 0;
  const random = () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
  const syllables = ['ka', 'lo', 'mi', 'ne', 'tu', 'ra', 'so', 'vi', 'de', 'po', 'zu', 'fa', 'gi', 'bo', 'xe', 'qu'];
  const words = Array.from({ length: size }, (_, i) => {
    let word = '';
    let n = i + 1;
    while (n > 0) {
      word += syllables[n % syllables.length];
      n = Math.floor(n / syllables.length);
    }
    return `${word}x`;
  });
  const weights = words.map((_, i) => 1 / (i + 1));
  const cumulative: number[] = [];
  weights.reduce((sum, weight, i) => (cumulative[i] = sum + weight), 0);
  const total = cumulative[cumulative.length - 1]!;
  const draw = () => {
    const target = random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < target) lo = mid + 1;
      else hi = mid;
    }
    return words[lo]!;
  };
  return { words, draw };
}

interface Timed {
  p50: number;
  p99: number;
}

function summary(values: number[]): Timed {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function latency(): Promise<void> {
  const mock = await startMockLlm({ embeddingDimensions: DIMENSIONS });
  const t = await buildTestApp({ processJobs: false, env: { LOG_LEVEL: 'warn', OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed' } });
  const db = t.app.infra.database.db;
  const repository = createDocumentsRepository();
  const vectors = t.app.infra.vectorSearch === 'available';
  try {
    const owners = await Promise.all(Array.from({ length: 10 }, (_, i) => actorOf(t, `bench_owner_${i}`)));
    // Two readers: one shared a quarter of the documents, one a tenth; every document is private to its owner.
    const quarter = await actorOf(t, 'bench_reader_quarter');
    const tenth = await actorOf(t, 'bench_reader_tenth');
    const vocab = vocabulary(30_000, 7);
    const perDocument = 100;
    const documentCount = Math.ceil(CHUNKS / perDocument);
    if (vectors) {
      await createVectorTable(db, DIMENSIONS);
      // Bulk load first, index after: building HNSW once is much faster than growing it row by row.
      await db.execute(sql`drop index if exists document_chunk_vectors_hnsw_idx`);
    }
    const started = performance.now();
    for (let d = 0; d < documentCount; d += 1) {
      const owner = owners[d % owners.length]!;
      const id = randomUUID();
      await repository.insert(db, {
        id,
        ownerId: owner.userId,
        title: `generated ${d}`,
        filename: `generated-${d}.txt`,
        mimeType: 'text/plain',
        sizeBytes: 1,
        sha256: randomUUID(),
        label: 'INTERNAL',
        visibility: 'private',
        status: 'indexed',
        encryptedContent: t.app.fieldCipher.encrypt('', documentContentAad(id)),
      });
      if (d % 4 === 0) await repository.insertShare(db, { documentId: id, userId: quarter.userId, role: null, createdBy: owner.userId });
      if (d % 10 === 3) await repository.insertShare(db, { documentId: id, userId: tenth.userId, role: null, createdBy: owner.userId });
      const chunks = Array.from({ length: Math.min(perDocument, CHUNKS - d * perDocument) }, (_, index) => {
        const chunkId = randomUUID();
        const text = Array.from({ length: 60 }, vocab.draw).join(' ');
        return { id: chunkId, index, text, encryptedContent: t.app.fieldCipher.encrypt(JSON.stringify({ text, heading_path: [] }), chunkContentAad(chunkId)), page: null, charStart: 0, charEnd: text.length, tokenCount: 60 };
      });
      await repository.replaceChunks(db, id, 1, chunks);
      if (vectors) {
        const rows = chunks.map((chunk) => sql`(${chunk.id}::uuid, ${id}::uuid, ${vectorLiteral(mockEmbedding(chunk.text, DIMENSIONS))}::vector)`);
        await db.execute(sql`insert into document_chunk_vectors (chunk_id, document_id, embedding) values ${sql.join(rows, sql`, `)}`);
        await db.execute(sql`update documents set vector_indexed = true, vector_reason = null, vector_model = 'ollama/mock-embed' where id = ${id}::uuid`);
      }
      if ((d + 1) % 50 === 0) process.stdout.write(`\rlatency: ${(d + 1) * perDocument} passages written`);
    }
    const written = (performance.now() - started) / 1000;
    let indexSeconds = 0;
    if (vectors) {
      const before = performance.now();
      await db.execute(sql`create index if not exists document_chunk_vectors_hnsw_idx on document_chunk_vectors using hnsw (embedding vector_cosine_ops)`);
      indexSeconds = (performance.now() - before) / 1000;
    }
    const readable = async (actor: Actor) =>
      (await queryRows<{ n: number }>(db, sql`select count(*)::int as n from document_chunks c join documents on documents.id = c.document_id where ${contentReadableSql(actor)}`))[0]!.n;
    const [counts] = await queryRows<{ chunks: number; postings: number }>(db, sql`select (select chunk_count::int from search_corpus_stats) as chunks, (select count(*)::int from search_postings) as postings`);
    console.log(
      `\rlatency: ${counts!.chunks} passages (${counts!.postings} postings${vectors ? `, ${DIMENSIONS}-dimension mock vectors, HNSW built in ${indexSeconds.toFixed(0)} s` : ', no pgvector'}) written in ${written.toFixed(0)} s; ` +
        `readers may read ${await readable(quarter)} and ${await readable(tenth)} passages`,
    );

    // Queries: three words of middling frequency, as real queries are.
    const queries = Array.from({ length: QUERIES }, (_, i) => [vocab.words[50 + ((i * 37) % 2000)], vocab.words[200 + ((i * 101) % 5000)], vocab.words[20 + ((i * 13) % 500)]].join(' '));
    const time = async (work: () => Promise<unknown>) => {
      const before = performance.now();
      await work();
      return performance.now() - before;
    };
    const line = (name: string, values: number[]) => {
      const { p50, p99 } = summary(values);
      return `${name.padEnd(44)} p50 ${p50.toFixed(1).padStart(7)} ms  p99 ${p99.toFixed(1).padStart(7)} ms`;
    };
    const ratio = (a: number[], u: number[]) => {
      const x = summary(a);
      const y = summary(u);
      return `authorized / unauthorized: p50 ${(x.p50 / y.p50).toFixed(2)}x, p99 ${(x.p99 / y.p99).toFixed(2)}x (target <= 1.5x)`;
    };
    for (const reader of [quarter, tenth]) {
      const authorized = contentReadableSql(reader);
      const unauthorized = sql`true`;
      const m = { keywordA: [] as number[], keywordU: [] as number[], hybridA: [] as number[], hybridU: [] as number[], service: [] as number[] };
      const hybrid = async (visible: SQL, query: string, lexemes: string[]) => {
        const [keyword, vector] = await Promise.all([rankKeyword(db, lexemes, visible, undefined, 50), rankVector(db, mockEmbedding(query, DIMENSIONS), visible, undefined, 50, 'auto')]);
        return fuseRrf([keyword, vector]).slice(0, 8);
      };
      for (const query of queries.slice(0, 10)) await rankKeyword(db, await queryLexemes(db, query), authorized, undefined, 8);
      for (const [i, query] of queries.entries()) {
        const lexemes = await queryLexemes(db, query);
        // A B B A, so drift weighs on both alike.
        const order = i % 2 === 0 ? (['A', 'U'] as const) : (['U', 'A'] as const);
        for (const which of order) {
          const visible = which === 'A' ? authorized : unauthorized;
          m[which === 'A' ? 'keywordA' : 'keywordU'].push(await time(() => rankKeyword(db, lexemes, visible, undefined, 8)));
          if (vectors) m[which === 'A' ? 'hybridA' : 'hybridU'].push(await time(() => hybrid(visible, query, lexemes)));
        }
        m.service.push(await time(() => t.app.documents.search(reader, { query, top_k: 8 }, CONTEXT)));
      }
      const share = reader === quarter ? '25%' : '10%';
      console.log(`latency (${share} readable): ${line('keyword ranking, authorized', m.keywordA)}`);
      console.log(`latency (${share} readable): ${line('keyword ranking, no authorization predicate', m.keywordU)}`);
      console.log(`latency (${share} readable): keyword ${ratio(m.keywordA, m.keywordU)}`);
      if (vectors) {
        console.log(`latency (${share} readable): ${line('hybrid ranking, authorized', m.hybridA)}`);
        console.log(`latency (${share} readable): ${line('hybrid ranking, no authorization predicate', m.hybridU)}`);
        console.log(`latency (${share} readable): hybrid ${ratio(m.hybridA, m.hybridU)}`);
      }
      console.log(`latency (${share} readable): ${line(`whole search (${vectors ? 'hybrid' : 'keyword'}: embed, rank, decrypt, highlight, audit)`, m.service)}`);
    }

    if (vectors) {
      // Filtered vector recall against exact search, for the 10% reader: the search as it runs (`auto`: an exact scan
      // when at most EXACT_SCAN_MAX_VECTORS vectors are readable, else HNSW with iterative scans), and the HNSW path
      // alone (what a reader with more readable vectors than that gets).
      const visible = contentReadableSql(tenth);
      const sample = queries.slice(0, Math.min(100, queries.length));
      const exact: number[] = [];
      const truths: Set<string>[] = [];
      for (const query of sample) {
        let truth: Awaited<ReturnType<typeof rankVector>> = [];
        exact.push(await time(async () => (truth = await rankVector(db, mockEmbedding(query, DIMENSIONS), visible, undefined, 10, 'exact'))));
        truths.push(new Set(truth.map((hit) => hit.chunkId)));
      }
      const readableVectors = await readable(tenth);
      for (const plan of ['auto', 'index'] as const) {
        let recall = 0;
        const timings: number[] = [];
        for (const [i, query] of sample.entries()) {
          let hits: Awaited<ReturnType<typeof rankVector>> = [];
          timings.push(await time(async () => (hits = await rankVector(db, mockEmbedding(query, DIMENSIONS), visible, undefined, 10, plan))));
          recall += hits.filter((hit) => truths[i]!.has(hit.chunkId)).length / Math.max(1, truths[i]!.size);
        }
        const name =
          plan === 'auto'
            ? `search (${readableVectors <= EXACT_SCAN_MAX_VECTORS ? 'exact scan' : 'HNSW'}: ${readableVectors} readable, switch at ${EXACT_SCAN_MAX_VECTORS})`
            : 'HNSW with iterative scan';
        console.log(`vector: ${name}, 10% readable: filtered recall@10 vs exact search ${(recall / sample.length).toFixed(3)} (target >= 0.95) over ${sample.length} queries`);
        console.log(`vector: ${line(`${plan === 'auto' ? 'search' : 'HNSW with iterative scan'}, 10% readable`, timings)}`);
      }
      console.log(`vector: ${line('exact scan, no index (the ceiling of recall)', exact)}`);
    }
  } finally {
    await t.close();
    await mock.close();
  }
}

async function main(): Promise<void> {
  console.log(`search benchmark on ${process.env.DATABASE_URL ? 'PostgreSQL' : 'PGlite (embedded, in memory)'}`);
  if (PARTS.has('quality')) await quality();
  if (PARTS.has('latency')) await latency();
}

await main();

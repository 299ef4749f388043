/**
 * Document pipeline benchmarks (the documents issue's targets):
 *
 * 1. Ingest throughput of the whole pipeline (upload, encryption, extraction and chunking in a worker thread,
 *    classification, chunk writes with BM25 statistics, embeddings through a local mock model, audit) vs the parsers
 *    alone (the same worker-thread extraction and chunking), same run, for a generated 200-page PDF and a
 *    20,000-row XLSX. Target: pipeline >= 0.6x the parsers' throughput.
 * 2. `/health` p99 while four large documents are processed vs idle, same run. Target <= 3x (parsing is off the
 *    event loop).
 * 3. Bulk import of the 5,183 SciFact abstracts as text documents (`cdsa documents import`'s code path):
 *    documents/s and chunks/s. Run once on the embedded database and once with DATABASE_URL for PostgreSQL.
 *
 *   npx tsx bench/documents.bench.ts [--scifact DIR]
 *   DATABASE_URL=postgres://... npx tsx bench/documents.bench.ts
 *
 * BENCH_PARTS=ingest,health,import selects parts; BENCH_IMPORT_LIMIT caps the import (default: all 5,183).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ExcelJS from 'exceljs';
import PDFDocument from 'pdfkit';
import { sql } from 'drizzle-orm';
import { runDocumentsImport } from '../src/cli/commands/documents.js';
import type { Actor } from '../src/modules/auth/permissions.js';
import { createParserPool } from '../src/modules/documents/documents.worker-pool.js';
import { buildTestApp, type TestApp } from '../test/helpers/app.js';
import { startMockLlm, type MockLlm } from '../test/mock-llm/server.js';
import { formatLoad, runLoad } from './lib/http-load.js';

const PARTS = new Set((process.env.BENCH_PARTS ?? 'ingest,health,import').split(','));
const CONTEXT = { ipAddress: null, userAgent: null, requestId: 'bench' };
const WORDS = 'the board reviewed quarterly revenue across regions while suppliers reported delays in shipping parts to the assembly plants and finance prepared forecasts for hiring'.split(' ');

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

function prose(seed: number, words: number): string {
  return Array.from({ length: words }, (_, i) => WORDS[(seed * 7 + i * 13) % WORDS.length]).join(' ');
}

function pdf(pages: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const doc = new PDFDocument({ autoFirstPage: false });
    const parts: Buffer[] = [];
    doc.on('data', (part: Buffer) => parts.push(part));
    doc.on('end', () => resolve(Buffer.concat(parts)));
    for (let page = 0; page < pages; page += 1) {
      doc.addPage();
      doc.fontSize(16).text(`Section ${page + 1}`);
      doc.fontSize(10).text(prose(page, 350));
    }
    doc.end();
  });
}

async function xlsx(rows: number): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('Ledger');
  sheet.addRow(['id', 'region', 'supplier', 'amount', 'note']);
  for (let i = 0; i < rows; i += 1) sheet.addRow([i, `region ${i % 12}`, `supplier ${i % 97}`, (i * 37) % 10_000, prose(i, 8)]);
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

async function app(mock: MockLlm, extra: Record<string, string> = {}): Promise<{ t: TestApp; owner: Actor }> {
  // On disk in DATA_DIR as `npm start` runs it (in memory, the embedded engine copies its growing files over and over).
  const dataDir = process.env.DATABASE_URL ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-bench-data-'));
  const t = await buildTestApp({ processJobs: false, ...(dataDir ? { embeddedDir: dataDir } : {}), env: { LOG_LEVEL: 'warn', OLLAMA_BASE_URL: mock.url, EMBEDDING_MODEL: 'ollama/mock-embed', DOCUMENT_MAX_BYTES: String(200 * 1024 * 1024), ...extra } });
  const username = `bench_${randomUUID().slice(0, 8)}`;
  const user = await t.app.users.createUser(null, { username, email: `${username}@example.test`, password: `Pw-${randomUUID()}`, fullName: null, role: 'ANALYST' }, { origin: 'cli' });
  const close = t.close.bind(t);
  t.close = async () => {
    await close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return { t, owner: { userId: user.id, username, role: 'ANALYST', sessionId: '', clearance: 'INTERNAL' } };
}

async function ingest(mock: MockLlm): Promise<void> {
  const files = [
    { name: 'report.pdf', mediaType: 'application/pdf' as const, bytes: await pdf(200) },
    { name: 'ledger.xlsx', mediaType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' as const, bytes: await xlsx(20_000) },
  ];
  const pool = createParserPool({ size: 1, timeoutMs: 600_000, maxMemoryMb: 1024 });
  const { t, owner } = await app(mock);
  try {
    for (const file of files) {
      // Parsers alone, warm, then the whole pipeline; A B B A so drift weighs on both alike.
      await pool.parse({ mediaType: file.mediaType, bytes: file.bytes, chunkTokens: 400, overlapTokens: 50, zipLimits: { maxUnzippedBytes: 1 << 30, maxEntries: 100_000 } });
      const parseTimes: number[] = [];
      const pipelineTimes: number[] = [];
      let chunks = 0;
      let chunkTexts: string[] = [];
      const parseOnce = async () => {
        const started = performance.now();
        const parsed = await pool.parse({ mediaType: file.mediaType, bytes: file.bytes, chunkTokens: 400, overlapTokens: 50, zipLimits: { maxUnzippedBytes: 1 << 30, maxEntries: 100_000 } });
        parseTimes.push(performance.now() - started);
        chunks = parsed.chunks.length;
        chunkTexts = parsed.chunks.map((chunk) => chunk.text);
      };
      const pipelineOnce = async (round: number) => {
        // Different bytes each round (a trailing comment), so it is a new document, not the same one returned.
        const bytes = Buffer.concat([file.bytes, Buffer.from(file.name.endsWith('.pdf') ? `\n%${round}\n` : '')]);
        const started = performance.now();
        const { document } = await t.app.documents.upload(owner, { filename: file.name, bytes: file.name.endsWith('.pdf') ? bytes : file.bytes, title: `${file.name} ${round}` }, CONTEXT);
        const done = await t.app.documents.processNow(document.id);
        pipelineTimes.push(performance.now() - started);
        if (done?.status !== 'indexed') throw new Error(`pipeline ended ${done?.status}: ${done?.error}`);
        await t.app.documents.remove(owner, document.id, CONTEXT);
      };
      // The pipeline warm as well (its own parser pool started, the vector table created), like the parsers above.
      await pipelineOnce(-1);
      pipelineTimes.length = 0;
      await parseOnce();
      await pipelineOnce(0);
      await pipelineOnce(1);
      await parseOnce();
      const parse = parseTimes.reduce((a, b) => a + b, 0) / parseTimes.length;
      const pipeline = pipelineTimes.reduce((a, b) => a + b, 0) / pipelineTimes.length;
      console.log(
        `ingest ${file.name.padEnd(12)} ${(file.bytes.length / 1024 / 1024).toFixed(1)} MiB, ${chunks} chunks: parsers alone ${(parse / 1000).toFixed(2)} s, whole pipeline ${(pipeline / 1000).toFixed(2)} s ` +
          `→ pipeline throughput ${(parse / pipeline).toFixed(2)}x the parsers' (target >= 0.6x)`,
      );
      const writes = await rawIndexWrites(t, chunkTexts, 256);
      console.log(
        `  ceiling: the same index writes in bare SQL (text analysis ${writes.analyse.toFixed(0)} ms, postings ${writes.postings.toFixed(0)} ms, ` +
          `${writes.vectors === null ? 'no pgvector' : `HNSW vectors ${writes.vectors.toFixed(0)} ms`}) → at most ${(parse / (parse + writes.total)).toFixed(2)}x the parsers' for any pipeline that indexes as it ingests`,
      );
    }
  } finally {
    await pool.close();
    await t.close();
  }
}

/**
 * The ceiling for the ingest ratio: what the database alone takes for the writes keyword and vector search need (the
 * passages' lexemes, one posting per lexeme and passage under a primary key, one HNSW entry per passage), in scratch
 * tables with none of our code, triggers, encryption or audit. Parsers + these writes is the least any pipeline that
 * indexes while it ingests can take on this machine.
 */
async function rawIndexWrites(t: TestApp, texts: string[], dimensions: number): Promise<{ analyse: number; postings: number; vectors: number | null; total: number }> {
  const db = t.app.infra.database.db;
  const scratch = `bench_${randomUUID().slice(0, 8)}`;
  const table = (suffix: string) => sql.raw(`${scratch}_${suffix}`);
  await db.execute(sql`create table ${table('texts')} (id serial primary key, body text)`);
  for (let start = 0; start < texts.length; start += 200) {
    await db.execute(sql`insert into ${table('texts')} (body) values ${sql.join(texts.slice(start, start + 200).map((text) => sql`(${text})`), sql`, `)}`);
  }
  const timed = async (work: () => Promise<unknown>) => {
    const started = performance.now();
    await work();
    return performance.now() - started;
  };
  const analyse = await timed(() => db.execute(sql`create table ${table('lexemes')} as select id, to_tsvector('english', body) v from ${table('texts')}`));
  await db.execute(sql`create table ${table('postings')} (term text, chunk int, tf int, primary key (term, chunk))`);
  const postings = await timed(() => db.execute(sql`insert into ${table('postings')} select u.lexeme, l.id, coalesce(array_length(u.positions, 1), 1) from ${table('lexemes')} l, unnest(l.v) u`));
  let vectors: number | null = null;
  if (t.app.infra.vectorSearch === 'available') {
    await db.execute(sql`create table ${table('vectors')} (id int primary key, embedding vector(${sql.raw(String(dimensions))}))`);
    await db.execute(sql`create index on ${table('vectors')} using hnsw (embedding vector_cosine_ops)`);
    const literal = (seed: number) => `[${Array.from({ length: dimensions }, (_, i) => Math.sin(seed * 31 + i * 7).toFixed(5)).join(',')}]`;
    vectors = await timed(async () => {
      for (let start = 0; start < texts.length; start += 100) {
        const rows = texts.slice(start, start + 100).map((_, i) => sql`(${start + i}, ${literal(start + i)}::vector)`);
        await db.execute(sql`insert into ${table('vectors')} (id, embedding) values ${sql.join(rows, sql`, `)}`);
      }
    });
  }
  for (const suffix of ['texts', 'lexemes', 'postings', 'vectors']) await db.execute(sql`drop table if exists ${table(suffix)}`);
  return { analyse, postings, vectors, total: analyse + postings + (vectors ?? 0) };
}

async function health(mock: MockLlm): Promise<void> {
  const { t, owner } = await app(mock);
  try {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const address = t.app.server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/health`;
    const big = await pdf(200);
    const idle = await runLoad({ url, connections: 8, seconds: 5 });
    const work = Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const { document } = await t.app.documents.upload(owner, { filename: `big-${i}.pdf`, bytes: Buffer.concat([big, Buffer.from(`\n%${i}\n`)]) }, CONTEXT);
        await t.app.documents.processNow(document.id);
      }),
    );
    const busy = await runLoad({ url, connections: 8, seconds: 5 });
    await work;
    const idleAgain = await runLoad({ url, connections: 8, seconds: 5 });
    console.log(formatLoad('/health idle', idle));
    console.log(formatLoad('/health, 4 PDFs processing', busy));
    console.log(formatLoad('/health idle again', idleAgain));
    const baseline = Math.max(idle.p99Ms, idleAgain.p99Ms);
    console.log(`health: p99 while processing / idle = ${(busy.p99Ms / baseline).toFixed(2)}x (target <= 3x)`);
  } finally {
    await t.close();
  }
}

async function bulkImport(mock: MockLlm): Promise<void> {
  const dir = argument('--scifact') ?? process.env.SCIFACT_DIR ?? path.resolve(process.cwd(), '..', '..', 'shared', 'datasets', 'scifact');
  const corpusFile = path.join(dir, 'corpus.jsonl');
  if (!fs.existsSync(corpusFile)) {
    console.log(`import: SciFact not found in ${dir} (pass --scifact DIR or SCIFACT_DIR); skipped`);
    return;
  }
  const limit = Number(process.env.BENCH_IMPORT_LIMIT ?? Infinity);
  const entries = fs.readFileSync(corpusFile, 'utf8').split('\n').filter((line) => line.trim() !== '').slice(0, limit).map((line) => JSON.parse(line) as { _id: string; title: string; text: string });
  // The abstracts as text files in a scratch folder (outside the repository), as an operator would import them.
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-scifact-'));
  const { t, owner } = await app(mock);
  try {
    for (const entry of entries) fs.writeFileSync(path.join(folder, `${entry._id}.txt`), `${entry.title}\n\n${entry.text}`);
    const lines: string[] = [];
    const started = performance.now();
    const code = await runDocumentsImport(t.app, [folder], { owner: owner.username, tags: [], visibility: 'private' }, { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) } as never);
    const seconds = (performance.now() - started) / 1000;
    const chunks = lines.reduce((sum, line) => sum + Number(/\((\d+) chunks/.exec(line)?.[1] ?? 0), 0);
    console.log(`import: ${entries.length} SciFact abstracts on ${process.env.DATABASE_URL ? 'PostgreSQL' : 'the embedded database'} in ${seconds.toFixed(1)} s: ${(entries.length / seconds).toFixed(1)} documents/s, ${(chunks / seconds).toFixed(1)} chunks/s (exit ${code})`);
  } finally {
    await t.close();
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

const mock = await startMockLlm({ embeddingDimensions: 256 });
try {
  console.log(`documents benchmark on ${process.env.DATABASE_URL ? 'PostgreSQL' : 'PGlite (embedded, on disk in a DATA_DIR)'}; embeddings through a local mock (ollama/mock-embed)`);
  if (PARTS.has('ingest')) await ingest(mock);
  if (PARTS.has('health')) await health(mock);
  if (PARTS.has('import')) await bulkImport(mock);
} finally {
  await mock.close();
}

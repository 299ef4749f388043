import { sql } from 'drizzle-orm';
import PDFDocument from 'pdfkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/db/client.js';
import type { ChunkView, DocumentView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { upload, uploadIndexed } from './helpers.js';

function pdfBytes(text: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const doc = new PDFDocument();
    const parts: Buffer[] = [];
    doc.on('data', (part: Buffer) => parts.push(part));
    doc.on('end', () => resolve(Buffer.concat(parts)));
    doc.text(text);
    doc.end();
  });
}

const MARKDOWN = `# Quarterly report

Revenue grew in every region. The board approved the plan.

## Risks

Supply chains remain fragile; the team keeps two suppliers per part.

## Outlook

Hiring continues in the second half.
`;

describe('documents: upload, extraction, chunking', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await buildTestApp({ env: { DOCUMENT_MAX_BYTES: '65536', DOCUMENT_CHUNK_TOKENS: '60', DOCUMENT_CHUNK_OVERLAP: '10' } });
    owner = await createUser(t);
  });
  afterAll(async () => {
    await t.close();
  });

  it('stores a Markdown upload encrypted, indexes it by structure and serves text, chunks and the original', async () => {
    const response = await upload(t, owner, 'report.md', MARKDOWN, { tags: 'finance, q3', title: 'Q3 report' });
    expect(response.statusCode).toBe(202);
    const created = response.json() as DocumentView;
    expect(created).toMatchObject({ title: 'Q3 report', filename: 'report.md', mime_type: 'text/markdown', label: 'INTERNAL', label_source: 'user', tags: ['finance', 'q3'], visibility: 'private', owner_id: owner.user.id });
    expect(['queued', 'extracting', 'chunking', 'embedding', 'indexed']).toContain(created.status);

    const document = await uploadIndexed(t, owner, 'report.md', MARKDOWN);
    expect(document.id).toBe(created.id);
    expect(document).toMatchObject({ status: 'indexed', progress: 1, vector_indexed: false });
    expect(document.vector_reason).toMatch(/EMBEDDING_MODEL|no pgvector/);
    expect(document.chunk_count).toBeGreaterThanOrEqual(3);

    const text = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}/text`, headers: owner.headers })).json() as { text: string };
    expect(text.text).toContain('Supply chains remain fragile');
    expect(text.text).not.toContain('##');

    const chunks = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}/chunks`, headers: owner.headers })).json() as { items: ChunkView[] };
    expect(chunks.items).toHaveLength(document.chunk_count);
    const risks = chunks.items.find((chunk) => chunk.text.includes('Supply chains'))!;
    expect(risks.heading_path).toEqual(['Quarterly report', 'Risks']);
    expect(text.text.slice(risks.char_start, risks.char_end)).toBe(risks.text);
    expect(risks.token_count).toBeGreaterThan(0);

    const file = await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}/file`, headers: owner.headers });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-disposition']).toMatch(/^attachment; filename="report.md"/);
    expect(file.body).toBe(MARKDOWN);

    // Encrypted at rest: neither the original nor any passage is in the database as plain text.
    const [plain] = await queryRows<{ n: number }>(
      t.app.infra.database.db,
      sql`select (select count(*) from documents where encrypted_content like ${'%Supply chains%'} or encrypted_text like ${'%Supply chains%'})::int
        + (select count(*) from document_chunks where encrypted_content like ${'%Supply chains%'})::int as n`,
    );
    expect(plain!.n).toBe(0);

    const events = await queryRows<{ event_type: string; details: Record<string, unknown> }>(
      t.app.infra.database.db,
      sql`select event_type, details from audit_events where resource_id = ${document.id} order by seq`,
    );
    expect(events.map((event) => event.event_type)).toEqual(['DOCUMENT_UPLOADED', 'DOCUMENT_INDEXED', 'DOCUMENT_ACCESSED', 'DOCUMENT_ACCESSED', 'DOCUMENT_ACCESSED']);
    expect(JSON.stringify(events)).not.toContain('Supply');
    const notifications = await queryRows<{ type: string }>(t.app.infra.database.db, sql`select type from notifications where user_id = ${owner.user.id}`);
    expect(notifications.map((row) => row.type)).toContain('DOCUMENT_INDEXED');
  });

  it('answers the same bytes uploaded again by the same owner with the existing document (200), another owner gets their own', async () => {
    const first = await upload(t, owner, 'same.txt', 'identical content');
    const second = await upload(t, owner, 'renamed.txt', 'identical content');
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(200);
    expect(second.json().id).toBe(first.json().id);
    const other = await createUser(t);
    const third = await upload(t, other, 'same.txt', 'identical content');
    expect(third.statusCode).toBe(202);
    expect(third.json().id).not.toBe(first.json().id);
  });

  it('extracts CSV rows with their headers and only the visible main text of HTML', async () => {
    const csv = await uploadIndexed(t, owner, 'people.csv', 'name,city\nAda,London\nGrace,Arlington\n');
    const csvText = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${csv.id}/text`, headers: owner.headers })).json().text;
    expect(csvText).toBe('name: Ada; city: London\n\nname: Grace; city: Arlington');

    const html = '<html><head><title>t</title><style>.x{color:red}</style><script>steal()</script></head><body><nav>Home | About</nav><main><h1>Policy</h1><p>Visible <b>words</b>.</p><div style="display: none">hidden words</div><p hidden>also hidden</p></main><footer>footer</footer></body></html>';
    const page = await uploadIndexed(t, owner, 'policy.html', html);
    const htmlText = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${page.id}/text`, headers: owner.headers })).json().text;
    expect(htmlText).toBe('Policy\n\nVisible words.');
  });

  it('refuses a file whose content does not match its name, and unsupported types, with 415 and nothing stored', async () => {
    const pdf = await pdfBytes('a real PDF');
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000a49444154789c6360000000020001e221bc330000000049454e44ae426082', 'hex');
    const cases: [string, Buffer | string, RegExp][] = [
      ['notes.txt', pdf, /does not match its name/],
      ['report.pdf', 'plain text pretending', /is not a PDF file/],
      ['image.png', png, /not supported/],
      ['archive.bin', Buffer.from([0, 1, 2, 3, 4, 5]), /not supported/],
    ];
    const [before] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from documents`);
    for (const [filename, bytes, detail] of cases) {
      const response = await upload(t, owner, filename, bytes);
      expect(response.statusCode, filename).toBe(415);
      expect(response.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(response.json().detail).toMatch(detail);
    }
    const [after] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from documents`);
    expect(after!.n).toBe(before!.n);
  });

  it('accepts text that starts like a binary signature (a BMP’s "BM")', async () => {
    const response = await upload(t, owner, 'bmi.txt', 'BMI and mortality in older adults: a cohort study.');
    expect(response.statusCode).toBe(202);
    expect(response.json().mime_type).toBe('text/plain');
  });

  it('refuses a file over DOCUMENT_MAX_BYTES with 413, a JSON body with 415, and bad fields with 422', async () => {
    const big = await upload(t, owner, 'big.txt', 'x'.repeat(70_000));
    expect(big.statusCode).toBe(413);
    const json = await t.app.inject({ method: 'POST', url: '/api/v1/documents', headers: owner.headers, payload: { file: 'x' } });
    expect(json.statusCode).toBe(415);
    const badLabel = await upload(t, owner, 'ok.txt', 'fine', { label: 'SECRETISH' });
    expect(badLabel.statusCode).toBe(422);
    expect(badLabel.json().errors).toEqual([{ pointer: '/label', detail: expect.any(String) }]);
    const [rows] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from documents where filename in ('big.txt', 'ok.txt')`);
    expect(rows!.n).toBe(0);
  });

  it('raises the label from what the redactor finds (never lowers it) and records the counts', async () => {
    const card = await uploadIndexed(t, owner, 'card.txt', 'Customer paid with 4111 1111 1111 1111 yesterday. Call back.', { label: 'PUBLIC' });
    expect(card).toMatchObject({ label: 'CONFIDENTIAL', label_source: 'auto', detected: { CREDIT_CARD: 1 } });
    const notACard = await uploadIndexed(t, owner, 'digits.txt', 'Order 4111 1111 1111 1112 shipped.', { label: 'PUBLIC' });
    expect(notACard).toMatchObject({ label: 'PUBLIC', label_source: 'user' });
    const secret = await uploadIndexed(t, owner, 'env.txt', 'deploy with key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD please', { label: 'INTERNAL' });
    expect(secret).toMatchObject({ label: 'RESTRICTED', label_source: 'auto' });
    expect(secret.detected.SECRET).toBe(1);
    const kept = await uploadIndexed(t, owner, 'restricted.txt', 'Card 4111 1111 1111 1111', { label: 'RESTRICTED' });
    expect(kept).toMatchObject({ label: 'RESTRICTED', label_source: 'user' });
  });

  it('marks a document whose extraction fails as failed with a reason the owner can read', async () => {
    const broken = await uploadIndexed(t, owner, 'broken.csv', 'a,b\n"unterminated,1\n');
    expect(broken.status).toBe('failed');
    expect(broken.error).toMatch(/CSV/);
    const notifications = await queryRows<{ type: string }>(t.app.infra.database.db, sql`select type from notifications where user_id = ${owner.user.id} and type = 'DOCUMENT_PROCESSING_FAILED'`);
    expect(notifications).toHaveLength(1);
  });

  it('deletes for real: no table holds the text afterwards', async () => {
    const marker = `zebracorn${Date.now()}`;
    const document = await uploadIndexed(t, owner, 'secret-plan.txt', `The plan mentions ${marker} twice: ${marker}.`);
    const tables = await queryRows<{ table_name: string }>(t.app.infra.database.db, sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`);
    const tablesHoldingMarker = async () => {
      const found: string[] = [];
      for (const { table_name } of tables) {
        const [row] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from ${sql.identifier(table_name)} as t where t::text ilike ${`%${marker}%`}`);
        if (row!.n > 0) found.push(table_name);
      }
      return found;
    };
    // Before: the keyword index holds the word (as a lexeme, in the passage's lexemes, its BM25 postings and the
    // corpus statistics), so the scan can find what a delete leaves behind.
    expect((await tablesHoldingMarker()).sort()).toEqual(['document_chunks', 'search_postings', 'search_term_stats']);
    const removed = await t.app.inject({ method: 'DELETE', url: `/api/v1/documents/${document.id}`, headers: owner.headers });
    expect(removed.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/documents/${document.id}`, headers: owner.headers })).statusCode).toBe(404);
    expect(await tablesHoldingMarker()).toEqual([]);
    const events = await queryRows<{ event_type: string; details: unknown }>(t.app.infra.database.db, sql`select event_type, details from audit_events where resource_id = ${document.id} order by seq`);
    expect(events.map((event) => event.event_type)).toContain('DOCUMENT_DELETED');
  });
});

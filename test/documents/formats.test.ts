import ExcelJS from 'exceljs';
import { Document, HeadingLevel, Packer, Paragraph } from 'docx';
import { strToU8, zipSync } from 'fflate';
import PDFDocument from 'pdfkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChunkView } from '../../src/modules/documents/documents.schemas.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { upload, uploadIndexed } from './helpers.js';

/** Every fixture is generated here, with the writers people use, so what is parsed is what real tools produce. */

function pdf(pages: string[], options: PDFKit.PDFDocumentOptions = {}): Promise<Buffer> {
  return new Promise((resolve) => {
    const doc = new PDFDocument(options);
    const parts: Buffer[] = [];
    doc.on('data', (part: Buffer) => parts.push(part));
    doc.on('end', () => resolve(Buffer.concat(parts)));
    pages.forEach((text, index) => {
      if (index > 0) doc.addPage();
      doc.text(text);
    });
    doc.end();
  });
}

async function docx(): Promise<Buffer> {
  const document = new Document({
    sections: [
      {
        children: [
          new Paragraph({ text: 'Employee handbook', heading: HeadingLevel.HEADING_1 }),
          new Paragraph('Welcome to the company.'),
          new Paragraph({ text: 'Leave policy', heading: HeadingLevel.HEADING_2 }),
          new Paragraph('Everyone gets twenty-five days of leave.'),
        ],
      },
    ],
  });
  return Packer.toBuffer(document);
}

async function xlsx(rows: number): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('Ledger');
  sheet.addRow(['account', 'amount']);
  for (let i = 1; i <= rows; i += 1) sheet.addRow([`acct-${i}`, i * 10]);
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

const PPTX_TYPES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/ppt/presentation.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"/><Override PartName="/ppt/slides/slide1.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.slide+xml"/></Types>`;
const slide = (title: string, body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>${title}</a:t></a:r></a:p></p:txBody></p:sp><p:sp><p:txBody><a:p><a:r><a:t>${body}</a:t></a:r><a:r><a:t> &amp; more</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>`;

/** A minimal presentation package, zipped as PowerPoint does (content types, presentation part, slides). */
function pptx(): Buffer {
  return Buffer.from(
    zipSync({
      '[Content_Types].xml': strToU8(PPTX_TYPES),
      'ppt/presentation.xml': strToU8('<?xml version="1.0"?><p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>'),
      'ppt/slides/slide1.xml': strToU8(slide('Roadmap', 'Ship the pilot')),
      'ppt/slides/slide2.xml': strToU8(slide('Budget', 'Within plan')),
    }),
  );
}

const DOCX_TYPES = `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`;

const EML = [
  'From: Ada Lovelace <ada@example.test>',
  'To: Charles Babbage <charles@example.test>',
  'Subject: Engine notes',
  'Date: Tue, 01 Dec 2026 10:00:00 +0000',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'The analytical engine weaves algebraic patterns.',
  '--b1',
  'Content-Type: text/plain; name="notes.txt"',
  'Content-Disposition: attachment; filename="notes.txt"',
  '',
  'Attachment about Bernoulli numbers.',
  '--b1',
  'Content-Type: image/png; name="x.png"',
  'Content-Disposition: attachment; filename="x.png"',
  'Content-Transfer-Encoding: base64',
  '',
  'iVBORw0KGgo=',
  '--b1--',
  '',
].join('\r\n');

describe('documents: every format from a generated fixture', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await buildTestApp({ env: { DOCUMENT_MAX_UNZIPPED_BYTES: '1048576', DOCUMENT_MAX_ZIP_ENTRIES: '50', DOCUMENT_CHUNK_TOKENS: '200' } });
    owner = await createUser(t);
  });
  afterAll(async () => {
    await t.close();
  });

  const read = async (id: string) => {
    const text = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${id}/text`, headers: owner.headers })).json().text as string;
    const chunks = (await t.app.inject({ method: 'GET', url: `/api/v1/documents/${id}/chunks?limit=200`, headers: owner.headers })).json().items as ChunkView[];
    return { text, chunks };
  };

  it('PDF: the text layer with page numbers', async () => {
    const document = await uploadIndexed(t, owner, 'minutes.pdf', await pdf(['First page about revenue.', 'Second page about risks.', 'Third page about hiring.']));
    expect(document).toMatchObject({ status: 'indexed', mime_type: 'application/pdf', page_count: 3 });
    const { text, chunks } = await read(document.id);
    expect(text).toContain('Second page about risks.');
    const pages = new Set(chunks.map((chunk) => chunk.page));
    expect(pages.has(1)).toBe(true);
    // A chunk starts on the page of its first block.
    const risks = text.indexOf('Second page');
    const chunk = chunks.find((candidate) => candidate.char_start <= risks && candidate.char_end > risks)!;
    expect(chunk.page === 1 || chunk.page === 2).toBe(true);
  });

  it('PDF: encrypted files are refused with 422 at upload', async () => {
    const response = await upload(t, owner, 'locked.pdf', await pdf(['secret'], { userPassword: 'u', ownerPassword: 'o' }));
    expect(response.statusCode).toBe(422);
    expect(response.json().detail).toMatch(/encrypted/);
  });

  it('DOCX: headings and paragraphs (mammoth)', async () => {
    const document = await uploadIndexed(t, owner, 'handbook.docx', await docx());
    expect(document.status).toBe('indexed');
    const { text, chunks } = await read(document.id);
    expect(text).toBe('Employee handbook\n\nWelcome to the company.\n\nLeave policy\n\nEveryone gets twenty-five days of leave.');
    expect(chunks.find((chunk) => chunk.text.includes('twenty-five'))!.heading_path).toEqual(['Employee handbook', 'Leave policy']);
  });

  it('XLSX: rows with their headers, the sheet as heading', async () => {
    const document = await uploadIndexed(t, owner, 'ledger.xlsx', await xlsx(3));
    expect(document.status).toBe('indexed');
    const { text, chunks } = await read(document.id);
    expect(text).toBe('account: acct-1; amount: 10\n\naccount: acct-2; amount: 20\n\naccount: acct-3; amount: 30');
    expect(chunks[0]!.heading_path).toEqual(['Ledger']);
  });

  it('PPTX: slides as pages, titles as headings', async () => {
    const document = await uploadIndexed(t, owner, 'deck.pptx', pptx());
    expect(document).toMatchObject({ status: 'indexed', page_count: 2 });
    const { text, chunks } = await read(document.id);
    expect(text).toBe('Roadmap\n\nShip the pilot & more\n\nBudget\n\nWithin plan & more');
    expect(chunks.map((chunk) => [chunk.page, chunk.heading_path])).toEqual([
      [1, ['Roadmap']],
      [2, ['Budget']],
    ]);
  });

  it('EML: headers, body and text attachments (not binary ones)', async () => {
    const document = await uploadIndexed(t, owner, 'notes.eml', EML);
    expect(document).toMatchObject({ status: 'indexed', mime_type: 'message/rfc822' });
    const { text } = await read(document.id);
    expect(text).toContain('Engine notes');
    expect(text).toContain('From: "Ada Lovelace" <ada@example.test>');
    expect(text).toContain('The analytical engine weaves algebraic patterns.');
    expect(text).toContain('notes.txt\n\nAttachment about Bernoulli numbers.');
    expect(text).not.toContain('iVBOR');
  });

  it('refuses zip bombs (decompressed size, entry count) with 422 and stores nothing', async () => {
    const bomb = Buffer.from(zipSync({ '[Content_Types].xml': strToU8(DOCX_TYPES), 'word/document.xml': new Uint8Array(4 * 1024 * 1024) }, { level: 9 }));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const big = await upload(t, owner, 'bomb.docx', bomb);
    expect(big.statusCode).toBe(422);
    expect(big.json().detail).toMatch(/zip bomb/);
    const parts: Record<string, Uint8Array> = { '[Content_Types].xml': strToU8(DOCX_TYPES), 'word/document.xml': strToU8('<w:document/>') };
    for (let i = 0; i < 60; i += 1) parts[`word/media/part${i}.xml`] = strToU8('x');
    const many = await upload(t, owner, 'many.docx', Buffer.from(zipSync(parts)));
    expect(many.statusCode).toBe(422);
    expect(many.json().detail).toMatch(/parts/);
    const list = (await t.app.inject({ method: 'GET', url: '/api/v1/documents?q=bomb', headers: owner.headers })).json();
    expect(list.items).toEqual([]);
  });

  it('refuses an Office or PDF name on bytes of another type (415)', async () => {
    expect((await upload(t, owner, 'fake.docx', 'just text')).statusCode).toBe(415);
    const pdfAsDocx = await upload(t, owner, 'fake.xlsx', await pdf(['x']));
    expect(pdfAsDocx.statusCode).toBe(415);
    expect(pdfAsDocx.json().detail).toMatch(/does not match/);
  });
});

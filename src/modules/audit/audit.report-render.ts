import { createHash } from 'node:crypto';
import PDFDocument from 'pdfkit';
import type { AuditEvent } from './audit.chain.js';

/** Collects a document into ~1 MB pieces handed to `store` as they fill, with its size and SHA-256 on the way. */
export function createChunkSink(store: (idx: number, data: Buffer) => Promise<void>, chunkBytes = 1024 * 1024) {
  let parts: Buffer[] = [];
  let buffered = 0;
  let idx = 0;
  let size = 0;
  const digest = createHash('sha256');

  async function flush(): Promise<void> {
    if (buffered === 0) return;
    const data = Buffer.concat(parts, buffered);
    parts = [];
    buffered = 0;
    await store(idx, data);
    idx += 1;
  }

  return {
    async write(data: string | Buffer): Promise<void> {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      digest.update(bytes);
      size += bytes.length;
      parts.push(bytes);
      buffered += bytes.length;
      if (buffered >= chunkBytes) await flush();
    },
    async finish(): Promise<{ size: number; sha256: string }> {
      await flush();
      return { size, sha256: digest.digest('hex') };
    },
  };
}

export type ChunkSink = ReturnType<typeof createChunkSink>;

export const CSV_COLUMNS = [
  'seq',
  'id',
  'created_at',
  'event_type',
  'user_id',
  'session_id',
  'resource_type',
  'resource_id',
  'ip_address',
  'user_agent',
  'details',
  'prev_hash',
  'hash',
] as const;

/** Where a spreadsheet may start a new cell: the separators of every locale's CSV import, and line breaks. */
const CELL_SEPARATORS = new Set([',', ';', '\t', '|', '\r', '\n']);
/** What makes a cell a formula when it starts with it (OWASP CSV injection). */
const FORMULA_STARTERS = new Set(['=', '+', '-', '@', '\t', '\r']);

/** An apostrophe before every formula starter that begins the text or follows a separator. */
function defuseFormulas(text: string): string {
  let out = '';
  let cellStart = true;
  for (const char of text) {
    if (cellStart && FORMULA_STARTERS.has(char)) out += "'";
    out += char;
    cellStart = CELL_SEPARATORS.has(char);
  }
  return out;
}

/**
 * One RFC 4180 field, always quoted. A spreadsheet that splits on another separator than the comma (`;` in many
 * locales) cuts a field wherever one appears, so a formula starter is defused not only at the start of the text but
 * after every separator too (`x;=cmd` becomes `x;'=cmd`). The JSON Lines export, not the CSV, is the verifiable copy.
 */
export function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return `"${defuseFormulas(text).replace(/"/g, '""')}"`;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRow(event: AuditEvent): string {
  return `${CSV_COLUMNS.map((column) => csvField(event[column])).join(',')}\r\n`;
}

export interface ReportSummary {
  report_id: string;
  title: string;
  generated_at: string;
  requested_by: string;
  requested_by_user: { username: string | null; full_name: string | null };
  period: { from: string; to: string };
  totals: { events: number; users: number; event_types: number };
  by_event_type: { event_type: string; count: number }[];
  /** Users as of generation: a deleted account keeps its id, with null names. */
  by_user: { user_id: string | null; username: string | null; full_name: string | null; count: number }[];
  by_day: { day: string; count: number }[];
  security: {
    /** Every alert event of the period (SECURITY_ALERT and TOKEN_REUSE_DETECTED): the rows `alerts` lists, uncapped. */
    security_alerts: number;
    security_alert_events: number;
    token_reuse_detected: number;
    login_failures: number;
    alerts: { seq: number; created_at: string; event_type: string; user_id: string | null; username: string | null; summary: string }[];
  };
  approvals: {
    requested: number;
    expired: number;
    decisions: { decision: string; count: number; avg_turnaround_seconds: number | null; median_turnaround_seconds: number | null; max_turnaround_seconds: number | null }[];
  };
  redactions: { events: number; entities_total: number; entities_by_type: { type: string; count: number }[] };
  chain: {
    first_seq: number | null;
    last_seq: number | null;
    last_hash: string | null;
    verified: boolean;
    first_invalid_seq: number | null;
    reason: string | null;
    head_seq: number;
    head_hash: string;
    checkpoint: { seq: number; hash: string; time: string; key_id: string; signature: string } | null;
    public_key_pem: string;
  };
}

// The standard PDF fonts cover Windows-1252; anything else would print as wrong glyphs.
const WIN_ANSI_EXTRA = '€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ';
function pdfText(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0)!;
    out += (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.includes(char) ? char : '?';
  }
  return out;
}

function userLabel(userId: string, name: { username: string | null; full_name: string | null }): string {
  if (!name.username) return userId;
  return `${name.username}${name.full_name ? ` (${name.full_name})` : ''} ${userId}`;
}

function seconds(value: number | null): string {
  if (value === null) return '-';
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

/** Renders the summary as a PDF (pdfkit) and hands the bytes to `write` as they are produced. */
export async function renderPdf(summary: ReportSummary, write: (chunk: Buffer) => Promise<void>): Promise<void> {
  const doc = new PDFDocument({
    size: 'A4',
    margin: 50,
    info: { Title: pdfText(summary.title), Author: 'CDSA', Subject: 'Audit trail compliance report', CreationDate: new Date(summary.generated_at) },
  });
  const bottom = () => doc.page.height - doc.page.margins.bottom;
  const left = doc.page.margins.left;
  const width = doc.page.width - doc.page.margins.left - doc.page.margins.right;

  const heading = (text: string) => {
    if (doc.y > bottom() - 60) doc.addPage();
    doc.moveDown(0.8).font('Helvetica-Bold').fontSize(13).fillColor('#000').text(pdfText(text), left, doc.y, { width });
    doc.moveDown(0.3).font('Helvetica').fontSize(9);
  };
  const line = (text: string) => {
    if (doc.y > bottom() - 14) doc.addPage();
    doc.font('Helvetica').fontSize(9).text(pdfText(text), left, doc.y, { width });
  };
  const table = (columns: { title: string; width: number }[], rows: string[][]) => {
    const total = columns.reduce((sum, column) => sum + column.width, 0);
    const widths = columns.map((column) => (column.width / total) * width);
    const drawRow = (cells: string[], bold: boolean) => {
      const height = Math.max(
        ...cells.map((cell, index) => doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(8).heightOfString(pdfText(cell), { width: widths[index]! - 4 })),
      );
      if (doc.y + height > bottom()) doc.addPage();
      const y = doc.y;
      let x = left;
      cells.forEach((cell, index) => {
        doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(8).text(pdfText(cell), x + 2, y, { width: widths[index]! - 4 });
        x += widths[index]!;
      });
      doc.y = y + height + 3;
    };
    drawRow(columns.map((column) => column.title), true);
    if (rows.length === 0) drawRow(columns.map((_, index) => (index === 0 ? 'none' : '')), false);
    for (const row of rows) drawRow(row, false);
    doc.x = left;
  };

  const produced = (async () => {
    for await (const chunk of doc as AsyncIterable<Buffer>) await write(chunk);
  })();

  doc.font('Helvetica-Bold').fontSize(18).text(pdfText(summary.title), { width });
  doc.moveDown(0.3).font('Helvetica').fontSize(10);
  line(`Period: ${summary.period.from} to ${summary.period.to}`);
  line(`Generated: ${summary.generated_at}   Report id: ${summary.report_id}`);
  line(`Requested by: ${userLabel(summary.requested_by, summary.requested_by_user)}`);
  line(
    `Events: ${summary.totals.events}   Distinct users: ${summary.totals.users}   Event types: ${summary.totals.event_types}`,
  );

  heading('Chain integrity');
  const chain = summary.chain;
  if (chain.first_seq === null) {
    line('No events in this period.');
  } else {
    line(`Events of the period lie in seq ${chain.first_seq} to ${chain.last_seq}.`);
    line(
      chain.verified
        ? 'Hash chain over this range: VERIFIED (every hash recomputed, every link checked).'
        : `Hash chain over this range: INVALID from seq ${chain.first_invalid_seq ?? '?'}: ${chain.reason ?? ''}`,
    );
  }
  if (chain.last_hash) line(`Last event hash of the period: ${chain.last_hash}`);
  line(`Chain head at generation: seq ${chain.head_seq}, hash ${chain.head_hash}`);
  if (chain.checkpoint) {
    line(`Anchoring checkpoint: seq ${chain.checkpoint.seq}, signed ${chain.checkpoint.time} by ${chain.checkpoint.key_id}`);
    line(`  hash ${chain.checkpoint.hash}`);
    line(`  signature ${chain.checkpoint.signature}`);
  } else {
    line('Anchoring checkpoint: none');
  }
  line('Public key (Ed25519, SPKI PEM):');
  for (const pemLine of chain.public_key_pem.trim().split('\n')) line(`  ${pemLine}`);

  heading('Events by type');
  table(
    [
      { title: 'Event type', width: 3 },
      { title: 'Count', width: 1 },
    ],
    summary.by_event_type.map((row) => [row.event_type, String(row.count)]),
  );

  heading('Events by user');
  table(
    [
      { title: 'Username', width: 2 },
      { title: 'Full name', width: 2 },
      { title: 'User id', width: 3 },
      { title: 'Count', width: 1 },
    ],
    summary.by_user.map((row) =>
      row.user_id === null
        ? ['(anonymous or system)', '', '', String(row.count)]
        : [row.username ?? '(deleted user)', row.full_name ?? '', row.user_id, String(row.count)],
    ),
  );

  heading('Security alerts');
  line(
    `Security alerts: ${summary.security.security_alerts} (SECURITY_ALERT ${summary.security.security_alert_events}, refresh-token reuse ${summary.security.token_reuse_detected})   Failed logins: ${summary.security.login_failures}`,
  );
  if (summary.security.alerts.length < summary.security.security_alerts) {
    line(`The table lists the latest ${summary.security.alerts.length} of them; the JSON and CSV reports hold every event.`);
  }
  doc.moveDown(0.3);
  table(
    [
      { title: 'Seq', width: 1 },
      { title: 'Time', width: 3 },
      { title: 'Type', width: 3 },
      { title: 'User', width: 4 },
      { title: 'Details', width: 5 },
    ],
    summary.security.alerts.map((alert) => [
      String(alert.seq),
      alert.created_at,
      alert.event_type,
      alert.user_id === null ? '-' : `${alert.username ?? '(deleted user)'} ${alert.user_id}`,
      alert.summary,
    ]),
  );

  heading('Approval decisions and turnaround');
  line(`Approvals requested: ${summary.approvals.requested}   Expired without decision: ${summary.approvals.expired}`);
  doc.moveDown(0.3);
  table(
    [
      { title: 'Decision', width: 2 },
      { title: 'Count', width: 1 },
      { title: 'Average', width: 1.5 },
      { title: 'Median', width: 1.5 },
      { title: 'Longest', width: 1.5 },
    ],
    summary.approvals.decisions.map((row) => [
      row.decision,
      String(row.count),
      seconds(row.avg_turnaround_seconds),
      seconds(row.median_turnaround_seconds),
      seconds(row.max_turnaround_seconds),
    ]),
  );

  heading('PII redaction');
  line(`Redaction events: ${summary.redactions.events}   Entities redacted: ${summary.redactions.entities_total}`);
  doc.moveDown(0.3);
  table(
    [
      { title: 'Entity type', width: 3 },
      { title: 'Count', width: 1 },
    ],
    summary.redactions.entities_by_type.map((row) => [row.type, String(row.count)]),
  );

  heading('Events by day (UTC)');
  table(
    [
      { title: 'Day', width: 3 },
      { title: 'Count', width: 1 },
    ],
    summary.by_day.map((row) => [row.day, String(row.count)]),
  );

  doc.end();
  await produced;
}

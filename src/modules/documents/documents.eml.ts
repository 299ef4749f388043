import { simpleParser } from 'mailparser';
import { assemble, type ExtractedBlock, type Extraction } from './documents.extract.js';

const MAX_ATTACHMENT_CHARS = 5_000_000;

/** EML: the headers that matter, the body (text, or the HTML's text), and text attachments each under its name. */
export async function extractEml(bytes: Buffer): Promise<Extraction> {
  const mail = await simpleParser(bytes, { skipHtmlToText: false, skipImageLinks: true, skipTextLinks: true });
  const subject = mail.subject?.trim() || '(no subject)';
  const addresses = (value: typeof mail.to) => (Array.isArray(value) ? value.map((entry) => entry.text).join(', ') : (value?.text ?? ''));
  const headers = [
    mail.from ? `From: ${mail.from.text}` : '',
    mail.to ? `To: ${addresses(mail.to)}` : '',
    mail.cc ? `Cc: ${addresses(mail.cc)}` : '',
    mail.date ? `Date: ${mail.date.toISOString()}` : '',
  ].filter((line) => line !== '');
  const blocks: ExtractedBlock[] = [
    { kind: 'heading', text: subject, page: null, headingPath: [], level: 1 },
    { kind: 'paragraph', text: headers.join('\n'), page: null, headingPath: [subject] },
  ];
  const body = mail.text ?? '';
  for (const paragraph of body.split(/\n\s*\n/)) blocks.push({ kind: 'paragraph', text: paragraph, page: null, headingPath: [subject] });
  for (const attachment of mail.attachments) {
    if (!attachment.contentType.startsWith('text/')) continue;
    const name = attachment.filename ?? 'attachment';
    blocks.push({ kind: 'heading', text: name, page: null, headingPath: [subject], level: 2 });
    for (const paragraph of attachment.content.toString('utf8').slice(0, MAX_ATTACHMENT_CHARS).split(/\n\s*\n/)) {
      blocks.push({ kind: 'paragraph', text: paragraph, page: null, headingPath: [subject, name] });
    }
  }
  return assemble(blocks, null);
}

import { randomBytes } from 'node:crypto';
import type { DocumentView } from '../../src/modules/documents/documents.schemas.js';
import type { TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/eventually.js';
import type { TestUser } from '../helpers/users.js';

export interface UploadFields {
  title?: string;
  label?: string;
  tags?: string;
  visibility?: string;
}

/** A multipart/form-data body with one file part and text fields, as a browser or curl -F sends it. */
export function multipartBody(filename: string, bytes: Buffer | string, fields: UploadFields = {}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----cdsa${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

export async function upload(t: TestApp, user: TestUser, filename: string, bytes: Buffer | string, fields: UploadFields = {}) {
  const body = multipartBody(filename, bytes, fields);
  return t.app.inject({ method: 'POST', url: '/api/v1/documents', headers: { ...user.headers, ...body.headers }, payload: body.payload });
}

/** Uploads and waits until processing has finished (indexed or failed). */
export async function uploadIndexed(t: TestApp, user: TestUser, filename: string, bytes: Buffer | string, fields: UploadFields = {}, timeoutMs = 20_000): Promise<DocumentView> {
  const response = await upload(t, user, filename, bytes, fields);
  if (response.statusCode !== 202 && response.statusCode !== 200) throw new Error(`upload failed: ${response.statusCode} ${response.body}`);
  const id = (response.json() as DocumentView).id;
  return waitProcessed(t, user, id, timeoutMs);
}

export async function waitProcessed(t: TestApp, user: TestUser, id: string, timeoutMs = 20_000): Promise<DocumentView> {
  let document: DocumentView | undefined;
  await eventually(async () => {
    const response = await t.app.inject({ method: 'GET', url: `/api/v1/documents/${id}`, headers: user.headers });
    document = response.json() as DocumentView;
    return document.status === 'indexed' || document.status === 'failed';
  }, timeoutMs);
  return document!;
}

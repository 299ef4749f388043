/**
 * Writes the OpenAPI document without a server: builds the app on an in-memory embedded database with throwaway keys
 * and prints what GET /openapi.json would answer. `npm run openapi -- out.json` (stdout without an argument).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { generateAuditHmacKeys, generateAuditSigningKeyPem, generateEncryptionKeys } from '../src/lib/secrets.js';
import { VERSION } from '../src/version.js';

const config = loadConfig({ CDSA_ENV: 'test', LOG_LEVEL: 'silent', CDSA_PROCESS_JOBS: 'false', OLLAMA_BASE_URL: 'http://127.0.0.1:9' }, VERSION);
const database = await openDatabase({});
const app = await buildApp({
  config,
  database,
  secrets: {
    jwtSecretKey: randomBytes(48),
    encryptionKeys: generateEncryptionKeys('openapi'),
    auditSigningKeyPem: generateAuditSigningKeyPem(),
    auditHmacKeys: generateAuditHmacKeys('openapi'),
    generated: { jwt: true, encryption: true, auditSigning: true, auditHmac: true },
  },
});
try {
  await app.ready();
  const document = `${JSON.stringify(app.swagger(), null, 2)}\n`;
  const output = process.argv[2];
  if (output) await writeFile(output, document);
  else process.stdout.write(document);
} finally {
  await app.close();
  await database.close();
}

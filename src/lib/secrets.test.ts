import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { generateAuditSigningKeyPem, generateEncryptionKeys, loadSecrets } from './secrets.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-secrets-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('loadSecrets', () => {
  it('generates development secrets once, owner-only, and reuses them', () => {
    const dataDir = tempDir();
    const config = loadConfig({ DATA_DIR: dataDir });
    const first = loadSecrets(config);
    const file = path.join(dataDir, 'dev-secrets.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(first.generated).toEqual({ jwt: true, encryption: true, auditSigning: true });
    const second = loadSecrets(config);
    expect(second.jwtSecretKey.equals(first.jwtSecretKey)).toBe(true);
    expect(second.encryptionKeys).toBe(first.encryptionKeys);
    expect(second.auditSigningKeyPem).toBe(first.auditSigningKeyPem);
  });

  it('refuses to start in production without explicit secrets', () => {
    const config = loadConfig({ CDSA_ENV: 'production', DATA_DIR: tempDir() });
    expect(() => loadSecrets(config)).toThrowError(/JWT_SECRET_KEY/);
  });

  it('refuses weak or short JWT keys and malformed encryption keys in production', () => {
    const keyFile = path.join(tempDir(), 'audit.pem');
    fs.writeFileSync(keyFile, generateAuditSigningKeyPem());
    const base = { CDSA_ENV: 'production', AUDIT_SIGNING_KEY_FILE: keyFile, ENCRYPTION_KEYS: generateEncryptionKeys() };
    expect(() => loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'short' }))).toThrowError(/JWT_SECRET_KEY/);
    expect(() => loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'a'.repeat(40) }))).toThrowError(/too weak/);
    expect(() =>
      loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c', ENCRYPTION_KEYS: 'k1:tooshort' })),
    ).toThrowError(/ENCRYPTION_KEYS/);
    const ok = loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c' }));
    expect(ok.generated).toEqual({ jwt: false, encryption: false, auditSigning: false });
  });

  it('reports an unusable DATA_DIR by name', () => {
    const file = path.join(tempDir(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expect(() => loadSecrets(loadConfig({ DATA_DIR: file }))).toThrowError(/DATA_DIR/);
  });
});

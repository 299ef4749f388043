import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { generateAuditHmacKeys, generateAuditSigningKeyPem, generateEncryptionKeys, loadSecrets } from './secrets.js';

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
    expect(first.generated).toEqual({ jwt: true, encryption: true, auditSigning: true, auditHmac: true });
    const second = loadSecrets(config);
    expect(second.jwtSecretKey.equals(first.jwtSecretKey)).toBe(true);
    expect(second.encryptionKeys).toBe(first.encryptionKeys);
    expect(second.auditSigningKeyPem).toBe(first.auditSigningKeyPem);
    expect(second.auditHmacKeys).toBe(first.auditHmacKeys);
    expect(first.auditHmacKeys).toMatch(/^m1:[A-Za-z0-9+/]{43}=$/);
  });

  it('starts in development with every secret set explicitly and a fresh DATA_DIR, writing no secrets file', () => {
    const dataDir = path.join(tempDir(), 'fresh');
    const keyFile = path.join(tempDir(), 'audit.pem');
    fs.writeFileSync(keyFile, generateAuditSigningKeyPem());
    const config = loadConfig({
      DATA_DIR: dataDir,
      JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c',
      ENCRYPTION_KEYS: generateEncryptionKeys(),
      AUDIT_SIGNING_KEY_FILE: keyFile,
      AUDIT_HMAC_KEYS: generateAuditHmacKeys(),
    });
    const secrets = loadSecrets(config);
    expect(secrets.generated).toEqual({ jwt: false, encryption: false, auditSigning: false, auditHmac: false });
    expect(fs.existsSync(path.join(dataDir, 'dev-secrets.json'))).toBe(false);
  });

  it('refuses to start in production without explicit secrets', () => {
    const config = loadConfig({ CDSA_ENV: 'production', DATA_DIR: tempDir() });
    expect(() => loadSecrets(config)).toThrowError(/JWT_SECRET_KEY/);
  });

  it('refuses weak or short JWT keys and malformed encryption keys in production', () => {
    const keyFile = path.join(tempDir(), 'audit.pem');
    fs.writeFileSync(keyFile, generateAuditSigningKeyPem());
    const base = { CDSA_ENV: 'production', AUDIT_SIGNING_KEY_FILE: keyFile, ENCRYPTION_KEYS: generateEncryptionKeys(), AUDIT_HMAC_KEYS: generateAuditHmacKeys() };
    expect(() => loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'short' }))).toThrowError(/JWT_SECRET_KEY/);
    expect(() => loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'a'.repeat(40) }))).toThrowError(/too weak/);
    expect(() =>
      loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c', ENCRYPTION_KEYS: 'k1:tooshort' })),
    ).toThrowError(/ENCRYPTION_KEYS/);
    const ok = loadSecrets(loadConfig({ ...base, JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c' }));
    expect(ok.generated).toEqual({ jwt: false, encryption: false, auditSigning: false, auditHmac: false });
  });

  it('needs the audit MAC key in production, from the environment or a file, and validates it', () => {
    const dir = tempDir();
    const keyFile = path.join(dir, 'audit.pem');
    fs.writeFileSync(keyFile, generateAuditSigningKeyPem());
    const base = {
      CDSA_ENV: 'production',
      DATA_DIR: dir,
      AUDIT_SIGNING_KEY_FILE: keyFile,
      ENCRYPTION_KEYS: generateEncryptionKeys(),
      JWT_SECRET_KEY: 'Zq8v!pL2#xR7mN4@tY1wK9sD3fG6hJ0c',
    };
    expect(() => loadSecrets(loadConfig(base))).toThrowError(/AUDIT_HMAC_KEYS/);
    expect(() => loadConfig({ ...base, AUDIT_HMAC_KEYS: 'm1:c2hvcnQ=' })).toThrowError(/AUDIT_HMAC_KEYS.*32 bytes/);
    const hmacFile = path.join(dir, 'audit-hmac');
    const keys = `${generateAuditHmacKeys('m2')},${generateAuditHmacKeys('m1')}`;
    fs.writeFileSync(hmacFile, `${keys}\n`);
    expect(loadSecrets(loadConfig({ ...base, AUDIT_HMAC_KEYS_FILE: hmacFile })).auditHmacKeys).toBe(keys);
    fs.writeFileSync(hmacFile, 'm1:not-base64');
    expect(() => loadSecrets(loadConfig({ ...base, AUDIT_HMAC_KEYS_FILE: hmacFile }))).toThrowError(/AUDIT_HMAC_KEYS_FILE/);
    // The key is never part of the message.
    const secret = generateAuditHmacKeys('m1');
    expect(() => loadConfig({ ...base, AUDIT_HMAC_KEYS: `${secret},${secret}` })).toThrowError(/unique/);
    try {
      loadConfig({ ...base, AUDIT_HMAC_KEYS: `${secret},${secret}` });
    } catch (error) {
      expect((error as Error).message).not.toContain(secret.slice(3));
    }
  });

  it('reports an unusable DATA_DIR by name', () => {
    const file = path.join(tempDir(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expect(() => loadSecrets(loadConfig({ DATA_DIR: file }))).toThrowError(/DATA_DIR/);
  });
});

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, parseAuditHmacKeys, type AppConfig } from '../config.js';

/**
 * The secrets the service needs to run. In production they must come from the operator; in development they are
 * generated once into DATA_DIR (owner-only permissions) and reused, so tokens and ciphertexts survive a restart.
 */
export interface ResolvedSecrets {
  jwtSecretKey: Buffer;
  /** `id:base64key[,id:base64key...]`, the first key active. */
  encryptionKeys: string;
  /** PKCS#8 PEM of the Ed25519 key that signs audit checkpoints; never stored in the database. */
  auditSigningKeyPem: string;
  /** `id:base64key[,...]` keying the audit chain's MACs, the first active; never stored in the database. */
  auditHmacKeys: string;
  generated: { jwt: boolean; encryption: boolean; auditSigning: boolean; auditHmac: boolean };
}

interface DevSecretsFile {
  jwt_secret_key?: string;
  encryption_keys?: string;
  audit_signing_key_pem?: string;
  audit_hmac_keys?: string;
}

const MIN_JWT_BYTES = 32;
const ENCRYPTION_KEYS_PATTERN = /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=(,[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=)*$/;
const WEAK_SECRETS = new Set(['changeme', 'secret', 'password', 'change-me', 'dev', 'development']);

export function generateEncryptionKeys(id = 'k1'): string {
  return `${id}:${randomBytes(32).toString('base64')}`;
}

export function generateAuditHmacKeys(id = 'm1'): string {
  return `${id}:${randomBytes(32).toString('base64')}`;
}

function readAuditHmacKeys(config: AppConfig): string | undefined {
  if (config.auditHmacKeys) return config.auditHmacKeys;
  if (!config.auditHmacKeysFile) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(config.auditHmacKeysFile, 'utf8').trim();
  } catch {
    throw new ConfigError('AUDIT_HMAC_KEYS_FILE', `cannot read ${config.auditHmacKeysFile}`);
  }
  parseAuditHmacKeys(text, 'AUDIT_HMAC_KEYS_FILE');
  return text;
}

export function generateAuditSigningKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

function validateJwtSecret(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length < MIN_JWT_BYTES) {
    throw new ConfigError('JWT_SECRET_KEY', `must be at least ${MIN_JWT_BYTES} bytes`);
  }
  if (WEAK_SECRETS.has(value.toLowerCase()) || new Set(value).size < 8) {
    throw new ConfigError('JWT_SECRET_KEY', 'is too weak (use e.g. `openssl rand -base64 48`)');
  }
  return bytes;
}

function validateEncryptionKeys(value: string): string {
  if (!ENCRYPTION_KEYS_PATTERN.test(value)) {
    throw new ConfigError('ENCRYPTION_KEYS', 'must be id:base64key[,id:base64key...] with 32-byte keys');
  }
  return value;
}

function readDevFile(file: string): DevSecretsFile {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DevSecretsFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError('DATA_DIR', `cannot read ${file}: ${(error as Error).message}`);
  }
}

export function ensureDataDir(dataDir: string): void {
  try {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    fs.accessSync(dataDir, fs.constants.R_OK | fs.constants.W_OK);
  } catch (error) {
    throw new ConfigError('DATA_DIR', `${dataDir} is not a readable and writable directory (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * Why the signing key cannot be read, and the fix. The usual case: `openssl genpkey` writes mode 0600 owned by the
 * operator, and a compose secret is a bind mount that keeps both, so the image's user (uid 10001) cannot read it.
 */
export function unreadableKeyMessage(file: string, error: NodeJS.ErrnoException): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (error.code === 'EACCES' && stat) {
    return (
      `cannot read ${file}: permission denied for uid ${uid} (the file is mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}, ` +
      `owner uid ${stat.uid}); make it readable by the user the server runs as, e.g. \`chown ${uid} <key file> && chmod 0400 <key file>\` ` +
      'on the host (the image runs as uid 10001)'
    );
  }
  if (error.code === 'ENOENT') return `cannot read ${file}: no such file (mount the key there, or fix the path)`;
  if (error.code === 'EISDIR') return `cannot read ${file}: it is a directory, not a PEM file`;
  return `cannot read ${file} (${error.code ?? error.message})`;
}

export function loadSecrets(config: AppConfig): ResolvedSecrets {
  const production = config.env === 'production';
  const envJwt = config.jwtSecretKey;
  const envKeys = config.encryptionKeys;
  let envSigningKey: string | undefined;
  if (config.auditSigningKeyFile) {
    try {
      envSigningKey = fs.readFileSync(config.auditSigningKeyFile, 'utf8');
    } catch (error) {
      throw new ConfigError('AUDIT_SIGNING_KEY_FILE', unreadableKeyMessage(config.auditSigningKeyFile, error as NodeJS.ErrnoException));
    }
    if (!envSigningKey.includes('PRIVATE KEY')) {
      throw new ConfigError('AUDIT_SIGNING_KEY_FILE', 'must contain a PEM (PKCS#8) Ed25519 private key');
    }
  }

  const envHmacKeys = readAuditHmacKeys(config);

  if (production) {
    if (!envJwt) throw new ConfigError('JWT_SECRET_KEY', 'is required when CDSA_ENV=production');
    if (!envKeys) throw new ConfigError('ENCRYPTION_KEYS', 'is required when CDSA_ENV=production');
    if (!envSigningKey) throw new ConfigError('AUDIT_SIGNING_KEY_FILE', 'is required when CDSA_ENV=production');
    if (!envHmacKeys) throw new ConfigError('AUDIT_HMAC_KEYS', 'is required when CDSA_ENV=production (or AUDIT_HMAC_KEYS_FILE)');
    return {
      jwtSecretKey: validateJwtSecret(envJwt),
      encryptionKeys: validateEncryptionKeys(envKeys),
      auditSigningKeyPem: envSigningKey,
      auditHmacKeys: envHmacKeys,
      generated: { jwt: false, encryption: false, auditSigning: false, auditHmac: false },
    };
  }

  ensureDataDir(config.dataDir);
  const file = path.join(config.dataDir, 'dev-secrets.json');
  const stored = readDevFile(file);
  const next: DevSecretsFile = { ...stored };
  if (!envJwt && !next.jwt_secret_key) next.jwt_secret_key = randomBytes(48).toString('base64');
  if (!envKeys && !next.encryption_keys) next.encryption_keys = generateEncryptionKeys();
  if (!envSigningKey && !next.audit_signing_key_pem) next.audit_signing_key_pem = generateAuditSigningKeyPem();
  if (!envHmacKeys && !next.audit_hmac_keys) next.audit_hmac_keys = generateAuditHmacKeys();
  if (!envHmacKeys) parseAuditHmacKeys(next.audit_hmac_keys!, 'DATA_DIR');
  if (JSON.stringify(next) !== JSON.stringify(stored)) {
    fs.writeFileSync(file, JSON.stringify(next, null, 2), { mode: 0o600 });
  }
  // Tighten a file that was there before; with every secret given explicitly there may be none at all.
  if (fs.existsSync(file)) fs.chmodSync(file, 0o600);

  return {
    jwtSecretKey: envJwt ? validateJwtSecret(envJwt) : Buffer.from(next.jwt_secret_key!, 'utf8'),
    encryptionKeys: envKeys ? validateEncryptionKeys(envKeys) : next.encryption_keys!,
    auditSigningKeyPem: envSigningKey ?? next.audit_signing_key_pem!,
    auditHmacKeys: envHmacKeys ?? next.audit_hmac_keys!,
    generated: { jwt: !envJwt, encryption: !envKeys, auditSigning: !envSigningKey, auditHmac: !envHmacKeys },
  };
}

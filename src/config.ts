import path from 'node:path';
import { parsePiiTypeList } from './modules/redaction/policy.js';
import type { PiiType } from './modules/redaction/types.js';
import { isLabel, LABELS, type Label } from './lib/labels.js';
import { CLOUD_MAX_LABELS, DEFAULT_CLOUD_MAX_LABEL, type CloudMaxLabel } from './modules/llm/sensitivity-routing.js';

/**
 * Configuration is parsed and validated here, once, from the environment. Every error names the variable so an
 * operator can fix it without reading code; values of secret variables are never echoed.
 */

export type Environment = 'development' | 'test' | 'production';
export type RegistrationMode = 'open' | 'closed';

export interface AppConfig {
  env: Environment;
  version: string;
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** Seconds to keep retrying an unreachable database at start-up before giving up. */
  databaseConnectTimeoutSeconds: number;
  redisUrl: string | undefined;
  /** Prefix of every Redis key, channel and queue, so several deployments (or test runs) can share one Redis. */
  redisPrefix: string;
  /** Raw secrets from the environment; resolved (or generated in development) by loadSecrets. */
  jwtSecretKey: string | undefined;
  encryptionKeys: string | undefined;
  auditSigningKeyFile: string | undefined;
  /** `id:base64key[,...]` keying the audit chain's MACs (validated here; a file is read by loadSecrets). */
  auditHmacKeys: string | undefined;
  auditHmacKeysFile: string | undefined;
  jwtAccessTtl: number;
  jwtRefreshTtl: number;
  /** Absolute lifetime of a login session, whatever the refreshes. */
  sessionMaxAgeSeconds: number;
  jwtIssuer: string;
  jwtAudience: string;
  admin: { username: string; email: string; password: string } | undefined;
  registrationMode: RegistrationMode;
  rateLimit: { max: number; periodSeconds: number };
  authRateLimitMax: number;
  loginMaxFailures: number;
  /** Failed logins per client address per 15 minutes, whatever the accounts tried, before that client answers 429. */
  loginMaxClientFailures: number;
  /** Roles whose users must enrol a second factor before they can do anything else. */
  mfaRequiredRoles: Role[];
  /** How recent a second-factor verification must be for a sensitive action (step-up). */
  mfaStepUpSeconds: number;
  /** OpenID Connect single sign-on; undefined when OIDC_ISSUER_URL is not set. */
  oidc: OidcConfig | undefined;
  corsOrigins: string[];
  logLevel: string;
  bodyLimitBytes: number;
  trustProxy: boolean;
  /** Whether `serve` also processes background jobs (the default); `cdsa worker` runs them alone. */
  processJobs: boolean;
  shutdownGraceMs: number;
  /**
   * Seconds after its last heartbeat that an instance counts as gone, and the tool calls it was running are resolved
   * as interrupted by the instances still alive. Heartbeats go every fifth of it.
   */
  instanceLeaseSeconds: number;
  llm: {
    ollamaBaseUrl: string | undefined;
    openaiBaseUrl: string | undefined;
    openaiApiKey: string | undefined;
    openaiLocal: boolean;
    anthropicBaseUrl: string | undefined;
    anthropicApiKey: string | undefined;
    geminiApiKey: string | undefined;
    geminiBaseUrl: string | undefined;
    defaultModel: string | undefined;
    requestTimeoutMs: number;
    redactCloudPrompts: boolean;
    /** Types replaced before text goes to a cloud model (REDACTION_TYPES); /llm/config can override it. */
    redactionTypes: PiiType[];
    /** Types whose presence raises a document's label (REDACTION_LABEL_TYPES). */
    redactionLabelTypes: PiiType[];
    /** Longest one detection may take before the text is refused (REDACTION_TIME_BUDGET_MS). */
    redactionTimeBudgetMs: number;
    /** Worker threads that detect PII in long texts off the event loop (REDACTION_WORKERS; 0: all on it). */
    redactionWorkers: number;
    /** Texts at least this long are detected on those workers (REDACTION_OFFLOAD_MIN_CHARS). */
    redactionOffloadMinChars: number;
    dailyTokenBudget: number | undefined;
    /** Chat requests (`/chat/stream`, `/chat/continue`) per user per window. */
    chatRateLimit: { max: number; periodSeconds: number };
    /** The highest label of content a cloud (non-local) model may receive (CLOUD_MAX_LABEL); never RESTRICTED. */
    cloudMaxLabel: CloudMaxLabel;
    /** A local model for turns whose context is above cloudMaxLabel (LOCAL_FALLBACK_MODEL); undefined: such turns are refused. */
    localFallbackModel: string | undefined;
  };
  auditLogPrompts: boolean;
  auditCheckpointIntervalSeconds: number;
  /**
   * The append-only JSON Lines file every audit event is also written to as it commits (outside the database, so a
   * truncated table is detected); undefined when none is configured (tests, or `AUDIT_SINK_FILE=off` outside production).
   */
  auditSinkFile: string | undefined;
  /** Optional HTTP endpoint (a SIEM's collector) that receives every append as JSON Lines. */
  auditSink: { url: string | undefined; token: string | undefined; timeoutMs: number };
  approvalTtlSeconds: number;
  /** E-mail delivery of notifications (SMTP_URL); undefined when not configured. `url` may hold credentials: never log it. */
  smtp: { url: string; from: string; timeoutMs: number } | undefined;
  /** Where people reach this service (links in e-mails): PUBLIC_URL, else http://HOST:PORT. No trailing slash. */
  publicUrl: string;
  /** Days a deleted vault secret (and its versions) is kept before it is purged. */
  vaultRetentionDays: number;
  toolHttpAllowlist: string[];
  /** Commands an MCP server over stdio may be started with (absolute paths or names on PATH), exactly as listed. */
  mcpStdioCommands: string[];
  /** CDSA's own MCP server (`POST /mcp`): browser origins allowed to call it (others 403), and its largest request body. */
  mcpServer: { allowedOrigins: string[]; bodyLimitBytes: number };
  documents: {
    /** Largest accepted upload (413 above it). */
    maxBytes: number;
    /** Target size of a chunk, in tokens, and how many tokens consecutive chunks share. */
    chunkTokens: number;
    chunkOverlapTokens: number;
    /** Decompressed bytes and entries an Office file (a zip) may expand to before it is refused as a bomb. */
    maxUnzippedBytes: number;
    maxZipEntries: number;
    /** EMBEDDING_MODEL (`provider/model`); undefined: keyword search only. */
    embeddingModel: string | undefined;
    /** Passages per embedding request, and the longest wait for one. */
    embeddingBatchSize: number;
    embeddingTimeoutMs: number;
  };
}

export interface OidcConfig {
  issuerUrl: string;
  clientId: string;
  clientSecret: string | undefined;
  redirectUrl: string;
  scopes: string;
  /** ID-token claim (string or array of strings) whose values OIDC_ROLE_MAP maps to roles; unset: roles stay local. */
  roleClaim: string | undefined;
  roleMap: Record<string, 'ANALYST' | 'MANAGER' | 'ADMIN'>;
  /** ID-token claim whose values OIDC_CLEARANCE_MAP maps to clearances; unset: clearances stay local. */
  clearanceClaim: string | undefined;
  clearanceMap: Record<string, Label>;
  /** Password sign-in is refused except for the break-glass administrator. */
  only: boolean;
  breakGlassUsername: string | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const ROLE_NAMES = ['ANALYST', 'MANAGER', 'ADMIN'] as const;
type Role = (typeof ROLE_NAMES)[number];

function roles(env: Env, name: string, fallback: Role[]): Role[] {
  if (env[name] === undefined) return fallback;
  const values = list(env, name).map((item) => item.toUpperCase());
  for (const value of values) {
    if (!(ROLE_NAMES as readonly string[]).includes(value)) {
      throw new ConfigError(name, `"${value}" is not a role (${ROLE_NAMES.join(', ')})`);
    }
  }
  return [...new Set(values as Role[])];
}

function str(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  const lowered = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lowered)) return true;
  if (['false', '0', 'no', 'off'].includes(lowered)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

/** `SMTP_URL` (smtp: or smtps:, credentials allowed in it) with its `SMTP_FROM`; neither value is ever echoed. */
function smtpConfig(env: Env): AppConfig['smtp'] {
  const smtpUrl = url(env, 'SMTP_URL', ['smtp:', 'smtps:']);
  const from = str(env, 'SMTP_FROM');
  const timeoutMs = int(env, 'SMTP_TIMEOUT_MS', 10_000, 100, 300_000);
  if (smtpUrl === undefined) {
    if (from !== undefined) throw new ConfigError('SMTP_FROM', 'is set but SMTP_URL is not');
    return undefined;
  }
  if (from === undefined) throw new ConfigError('SMTP_FROM', 'is required with SMTP_URL (the sender address, e.g. "CDSA <cdsa@example.com>")');
  if (!/^[^\r\n<>]*<?[^\s@<>]+@[^\s@<>]+>?$/.test(from)) throw new ConfigError('SMTP_FROM', 'must be an address, optionally with a name: "Name <user@host>"');
  return { url: smtpUrl, from, timeoutMs };
}

/** A host that a link can point to: a wildcard listen address is not one. */
function hostForLinks(host: string | undefined): string {
  if (host === undefined || host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function url(env: Env, name: string, protocols: string[], fallback?: string): string | undefined {
  const raw = str(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // The value may embed credentials, so it is not echoed.
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}`);
  }
  return raw.replace(/\/+$/, '');
}

function list(env: Env, name: string): string[] {
  const raw = str(env, name);
  if (raw === undefined) return [];
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

const HMAC_KEYS_PATTERN = /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43,}={0,2}(,[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43,}={0,2})*$/;

export interface AuditHmacKey {
  id: string;
  key: Buffer;
}

/**
 * `id:base64key[,id:base64key...]` (keys of at least 32 bytes, ids unique): the first key MACs new audit events, the
 * others still verify older ones. `variable` names the source in errors; the keys themselves are never echoed.
 */
export function parseAuditHmacKeys(value: string, variable: string): AuditHmacKey[] {
  const text = value.trim();
  if (!HMAC_KEYS_PATTERN.test(text)) throw new ConfigError(variable, 'must be id:base64key[,id:base64key...] with keys of at least 32 bytes');
  const keys = text.split(',').map((entry) => {
    const [id, encoded] = entry.split(':') as [string, string];
    return { id, key: Buffer.from(encoded, 'base64') };
  });
  if (keys.some((entry) => entry.key.length < 32)) throw new ConfigError(variable, 'every key must be at least 32 bytes');
  if (new Set(keys.map((entry) => entry.id)).size !== keys.length) throw new ConfigError(variable, 'key ids must be unique');
  return keys;
}

function auditSinkFile(env: Env, environment: Environment, dataDir: string): string | undefined {
  const raw = str(env, 'AUDIT_SINK_FILE');
  if (raw?.toLowerCase() === 'off') {
    if (environment === 'production' && str(env, 'AUDIT_SINK_URL') === undefined) {
      throw new ConfigError('AUDIT_SINK_FILE', 'cannot be off when CDSA_ENV=production unless AUDIT_SINK_URL is set (the audit trail needs a copy outside the database)');
    }
    return undefined;
  }
  if (raw !== undefined) return path.resolve(raw);
  // Tests configure a sink where they test it; everywhere else there is always one, next to the embedded database.
  return environment === 'test' ? undefined : path.join(dataDir, 'audit-sink.jsonl');
}

function piiTypes(env: Env, name: string): PiiType[] {
  try {
    return parsePiiTypeList(str(env, name) ?? 'all');
  } catch (error) {
    throw new ConfigError(name, (error as Error).message);
  }
}

function oidcConfig(env: Env, adminUsername: string | undefined): OidcConfig | undefined {
  const issuerUrl = url(env, 'OIDC_ISSUER_URL', ['https:', 'http:']);
  const only = bool(env, 'OIDC_ONLY', false);
  if (!issuerUrl) {
    if (only) throw new ConfigError('OIDC_ONLY', 'needs OIDC_ISSUER_URL');
    return undefined;
  }
  // Plain HTTP only to this machine (a local test provider); anything else must be TLS.
  if (issuerUrl.startsWith('http:') && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/.test(issuerUrl)) {
    throw new ConfigError('OIDC_ISSUER_URL', 'must be https:// (http:// only for 127.0.0.1 or localhost)');
  }
  const clientId = str(env, 'OIDC_CLIENT_ID');
  if (!clientId) throw new ConfigError('OIDC_CLIENT_ID', 'is required with OIDC_ISSUER_URL');
  const redirectUrl = url(env, 'OIDC_REDIRECT_URL', ['https:', 'http:']);
  if (!redirectUrl) throw new ConfigError('OIDC_REDIRECT_URL', 'is required with OIDC_ISSUER_URL');
  const scopes = str(env, 'OIDC_SCOPES') ?? 'openid email profile';
  if (!scopes.split(/\s+/).includes('openid')) throw new ConfigError('OIDC_SCOPES', 'must include openid');
  const roleMap: OidcConfig['roleMap'] = {};
  for (const entry of list(env, 'OIDC_ROLE_MAP')) {
    const [value, role] = entry.split('=').map((part) => part.trim());
    if (!value || !role || !(ROLE_NAMES as readonly string[]).includes(role.toUpperCase())) {
      throw new ConfigError('OIDC_ROLE_MAP', `"${entry}" is not claim-value=ROLE (ROLE one of ${ROLE_NAMES.join(', ')})`);
    }
    roleMap[value] = role.toUpperCase() as Role;
  }
  const roleClaim = str(env, 'OIDC_ROLE_CLAIM');
  if (Object.keys(roleMap).length > 0 && !roleClaim) throw new ConfigError('OIDC_ROLE_MAP', 'needs OIDC_ROLE_CLAIM');
  const clearanceMap: OidcConfig['clearanceMap'] = {};
  for (const entry of list(env, 'OIDC_CLEARANCE_MAP')) {
    const [value, label] = entry.split('=').map((part) => part.trim());
    if (!value || !label || !isLabel(label.toUpperCase())) {
      throw new ConfigError('OIDC_CLEARANCE_MAP', `"${entry}" is not claim-value=LABEL (LABEL one of ${LABELS.join(', ')})`);
    }
    clearanceMap[value] = label.toUpperCase() as Label;
  }
  const clearanceClaim = str(env, 'OIDC_CLEARANCE_CLAIM');
  if (Object.keys(clearanceMap).length > 0 && !clearanceClaim) throw new ConfigError('OIDC_CLEARANCE_MAP', 'needs OIDC_CLEARANCE_CLAIM');
  const breakGlassUsername = str(env, 'OIDC_BREAK_GLASS_USERNAME') ?? adminUsername;
  if (only && !breakGlassUsername) {
    throw new ConfigError('OIDC_ONLY', 'needs a break-glass administrator (OIDC_BREAK_GLASS_USERNAME or CDSA_ADMIN_USERNAME)');
  }
  return {
    issuerUrl,
    clientId,
    clientSecret: env.OIDC_CLIENT_SECRET || undefined,
    redirectUrl,
    scopes,
    roleClaim,
    roleMap,
    clearanceClaim,
    clearanceMap,
    only,
    breakGlassUsername,
  };
}

function cloudMaxLabel(env: Env): CloudMaxLabel {
  const raw = str(env, 'CLOUD_MAX_LABEL');
  if (raw === undefined) return DEFAULT_CLOUD_MAX_LABEL;
  const value = raw.toUpperCase();
  if (value === 'RESTRICTED') {
    throw new ConfigError('CLOUD_MAX_LABEL', 'cannot be RESTRICTED: restricted content never goes to a cloud provider (at most CONFIDENTIAL)');
  }
  if (!(CLOUD_MAX_LABELS as readonly string[]).includes(value)) {
    throw new ConfigError('CLOUD_MAX_LABEL', `must be one of ${CLOUD_MAX_LABELS.join(', ')}, got "${raw}"`);
  }
  return value as CloudMaxLabel;
}

/** The fallback must be a model of a local provider: Ollama, or the OpenAI-compatible server when OPENAI_LOCAL=true. */
function localFallbackModel(env: Env, openaiLocal: boolean): string | undefined {
  const raw = str(env, 'LOCAL_FALLBACK_MODEL');
  if (raw === undefined) return undefined;
  if (!/^[a-z0-9-]+\/.+$/.test(raw)) throw new ConfigError('LOCAL_FALLBACK_MODEL', 'must look like provider/model, e.g. ollama/llama3.1:8b');
  const provider = raw.slice(0, raw.indexOf('/'));
  if (provider === 'ollama' || (provider === 'openai' && openaiLocal)) return raw;
  throw new ConfigError(
    'LOCAL_FALLBACK_MODEL',
    provider === 'openai'
      ? 'names an openai model, but the OpenAI-compatible server is not marked local (OPENAI_LOCAL=true)'
      : `must be a local model (ollama/..., or openai/... with OPENAI_LOCAL=true), got a ${provider} model`,
  );
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env, version = '0.0.0'): AppConfig {
  const nodeEnv = oneOf(env, 'CDSA_ENV', ['development', 'test', 'production'] as const, 'development');

  const adminUsername = str(env, 'CDSA_ADMIN_USERNAME');
  const adminEmail = str(env, 'CDSA_ADMIN_EMAIL');
  const adminPassword = env.CDSA_ADMIN_PASSWORD;
  const adminParts = [adminUsername, adminEmail, adminPassword].filter((part) => part !== undefined && part !== '');
  if (adminParts.length > 0 && adminParts.length < 3) {
    throw new ConfigError(
      'CDSA_ADMIN_USERNAME',
      'CDSA_ADMIN_USERNAME, CDSA_ADMIN_EMAIL and CDSA_ADMIN_PASSWORD must be set together',
    );
  }

  const corsOrigins = list(env, 'CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin (scheme://host[:port])`);
    }
  }

  const mcpAllowedOrigins = list(env, 'MCP_ALLOWED_ORIGINS');
  for (const origin of mcpAllowedOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError('MCP_ALLOWED_ORIGINS', `"${origin}" is not an origin (scheme://host[:port])`);
    }
  }

  const allowlist = list(env, 'TOOL_HTTP_ALLOWLIST').map((entry) => entry.toLowerCase());
  for (const entry of allowlist) {
    if (!/^[a-z0-9.-]+(:\d{1,5})?$/.test(entry) && !/^\[[0-9a-f:]+\](:\d{1,5})?$/.test(entry)) {
      throw new ConfigError('TOOL_HTTP_ALLOWLIST', `"${entry}" is not host[:port]`);
    }
  }

  const budget = int(env, 'LLM_DAILY_TOKEN_BUDGET', 0, 0, 1_000_000_000);
  const openaiBaseUrl = url(env, 'OPENAI_BASE_URL', ['http:', 'https:']);
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);

  const dataDir = path.resolve(str(env, 'DATA_DIR') ?? './data');
  const auditHmacKeys = str(env, 'AUDIT_HMAC_KEYS');
  const auditHmacKeysFile = str(env, 'AUDIT_HMAC_KEYS_FILE');
  if (auditHmacKeys !== undefined && auditHmacKeysFile !== undefined) {
    throw new ConfigError('AUDIT_HMAC_KEYS', 'set either AUDIT_HMAC_KEYS or AUDIT_HMAC_KEYS_FILE, not both');
  }
  if (auditHmacKeys !== undefined) parseAuditHmacKeys(auditHmacKeys, 'AUDIT_HMAC_KEYS');

  const config: AppConfig = {
    env: nodeEnv,
    version,
    port: int(env, 'PORT', 8000, 0, 65535),
    host: str(env, 'HOST') ?? '127.0.0.1',
    dataDir,
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databaseConnectTimeoutSeconds: int(env, 'DATABASE_CONNECT_TIMEOUT', 30, 0, 3600),
    redisUrl,
    redisPrefix: str(env, 'REDIS_KEY_PREFIX') ?? 'cdsa',
    jwtSecretKey: env.JWT_SECRET_KEY,
    encryptionKeys: str(env, 'ENCRYPTION_KEYS'),
    auditSigningKeyFile: str(env, 'AUDIT_SIGNING_KEY_FILE'),
    auditHmacKeys,
    auditHmacKeysFile,
    jwtAccessTtl: int(env, 'JWT_ACCESS_TTL', 900, 30, 86_400),
    jwtRefreshTtl: int(env, 'JWT_REFRESH_TTL', 1_209_600, 60, 31_536_000),
    sessionMaxAgeSeconds: int(env, 'SESSION_MAX_AGE', 2_592_000, 60, 31_536_000),
    jwtIssuer: str(env, 'JWT_ISSUER') ?? 'cdsa',
    jwtAudience: str(env, 'JWT_AUDIENCE') ?? 'cdsa-api',
    admin:
      adminUsername && adminEmail && adminPassword
        ? { username: adminUsername, email: adminEmail, password: adminPassword }
        : undefined,
    // Closed by default: a fresh installation has no open sign-up until an operator chooses one (first run: see runtime.ts).
    registrationMode: oneOf(env, 'REGISTRATION_MODE', ['open', 'closed'] as const, 'closed'),
    rateLimit: {
      max: int(env, 'RATE_LIMIT_REQUESTS', 100, 1, 10_000_000),
      periodSeconds: int(env, 'RATE_LIMIT_PERIOD', 60, 1, 86_400),
    },
    authRateLimitMax: int(env, 'AUTH_RATE_LIMIT_REQUESTS', 20, 1, 10_000_000),
    loginMaxFailures: int(env, 'LOGIN_MAX_FAILURES', 5, 1, 1000),
    loginMaxClientFailures: int(env, 'LOGIN_MAX_CLIENT_FAILURES', 50, 1, 1_000_000),
    mfaRequiredRoles: roles(env, 'MFA_REQUIRED_ROLES', ['MANAGER', 'ADMIN']),
    mfaStepUpSeconds: int(env, 'MFA_STEP_UP_SECONDS', 300, 30, 86_400),
    oidc: oidcConfig(env, adminUsername),
    corsOrigins,
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 1_048_576, 1024, 104_857_600),
    trustProxy: bool(env, 'TRUST_PROXY', false),
    processJobs: bool(env, 'CDSA_PROCESS_JOBS', true),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    instanceLeaseSeconds: int(env, 'INSTANCE_LEASE_SECONDS', 10, 1, 3_600),
    llm: {
      ollamaBaseUrl: url(env, 'OLLAMA_BASE_URL', ['http:', 'https:'], 'http://localhost:11434'),
      openaiBaseUrl,
      openaiApiKey: str(env, 'OPENAI_API_KEY'),
      openaiLocal: bool(env, 'OPENAI_LOCAL', false),
      anthropicBaseUrl: url(env, 'ANTHROPIC_BASE_URL', ['http:', 'https:']),
      anthropicApiKey: str(env, 'ANTHROPIC_API_KEY'),
      geminiApiKey: str(env, 'GEMINI_API_KEY'),
      geminiBaseUrl: url(env, 'GEMINI_BASE_URL', ['http:', 'https:']),
      defaultModel: str(env, 'LLM_DEFAULT_MODEL'),
      requestTimeoutMs: int(env, 'LLM_REQUEST_TIMEOUT_MS', 60_000, 100, 3_600_000),
      redactCloudPrompts: bool(env, 'REDACT_CLOUD_PROMPTS', true),
      redactionTypes: piiTypes(env, 'REDACTION_TYPES'),
      redactionLabelTypes: piiTypes(env, 'REDACTION_LABEL_TYPES'),
      redactionTimeBudgetMs: int(env, 'REDACTION_TIME_BUDGET_MS', 250, 1, 60_000),
      redactionWorkers: int(env, 'REDACTION_WORKERS', 1, 0, 16),
      redactionOffloadMinChars: int(env, 'REDACTION_OFFLOAD_MIN_CHARS', 8_192, 256, 10_000_000),
      dailyTokenBudget: budget === 0 ? undefined : budget,
      chatRateLimit: {
        max: int(env, 'CHAT_RATE_LIMIT_REQUESTS', 30, 1, 10_000_000),
        periodSeconds: int(env, 'CHAT_RATE_LIMIT_PERIOD', 60, 1, 86_400),
      },
      cloudMaxLabel: cloudMaxLabel(env),
      localFallbackModel: localFallbackModel(env, bool(env, 'OPENAI_LOCAL', false)),
    },
    auditLogPrompts: bool(env, 'AUDIT_LOG_PROMPTS', false),
    auditCheckpointIntervalSeconds: int(env, 'AUDIT_CHECKPOINT_INTERVAL', 3600, 0, 31_536_000),
    auditSinkFile: auditSinkFile(env, nodeEnv, dataDir),
    auditSink: {
      url: url(env, 'AUDIT_SINK_URL', ['http:', 'https:']),
      token: str(env, 'AUDIT_SINK_TOKEN'),
      timeoutMs: int(env, 'AUDIT_SINK_TIMEOUT_MS', 5_000, 100, 60_000),
    },
    approvalTtlSeconds: int(env, 'APPROVAL_TTL_SECONDS', 86_400, 1, 31_536_000),
    smtp: smtpConfig(env),
    publicUrl: (url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? `http://${hostForLinks(str(env, 'HOST'))}:${int(env, 'PORT', 8000, 0, 65535)}`).replace(/\/+$/, ''),
    vaultRetentionDays: int(env, 'VAULT_RETENTION_DAYS', 30, 0, 3650),
    toolHttpAllowlist: allowlist,
    mcpStdioCommands: list(env, 'MCP_STDIO_COMMANDS'),
    mcpServer: { allowedOrigins: mcpAllowedOrigins, bodyLimitBytes: int(env, 'MCP_BODY_LIMIT_BYTES', 1_048_576, 1024, 104_857_600) },
    documents: {
      maxBytes: int(env, 'DOCUMENT_MAX_BYTES', 52_428_800, 1024, 1_073_741_824),
      chunkTokens: int(env, 'DOCUMENT_CHUNK_TOKENS', 400, 50, 4000),
      chunkOverlapTokens: int(env, 'DOCUMENT_CHUNK_OVERLAP', 50, 0, 1000),
      maxUnzippedBytes: int(env, 'DOCUMENT_MAX_UNZIPPED_BYTES', 209_715_200, 1024, 4_294_967_296),
      maxZipEntries: int(env, 'DOCUMENT_MAX_ZIP_ENTRIES', 10_000, 10, 1_000_000),
      embeddingModel: str(env, 'EMBEDDING_MODEL'),
      embeddingBatchSize: int(env, 'EMBEDDING_BATCH_SIZE', 64, 1, 2048),
      embeddingTimeoutMs: int(env, 'EMBEDDING_TIMEOUT_MS', 30_000, 100, 600_000),
    },
  };
  if (config.documents.chunkOverlapTokens >= config.documents.chunkTokens) {
    throw new ConfigError('DOCUMENT_CHUNK_OVERLAP', 'must be smaller than DOCUMENT_CHUNK_TOKENS');
  }

  if (config.documents.embeddingModel !== undefined) {
    const [provider] = config.documents.embeddingModel.split('/', 1);
    if (!/^[a-z0-9-]+\/.+$/.test(config.documents.embeddingModel)) throw new ConfigError('EMBEDDING_MODEL', 'must look like provider/model, e.g. ollama/nomic-embed-text');
    if (provider === 'anthropic') throw new ConfigError('EMBEDDING_MODEL', 'Anthropic has no embeddings API; use ollama/, openai/ or gemini/');
  }
  if (config.llm.defaultModel !== undefined && !/^[a-z0-9-]+\/.+$/.test(config.llm.defaultModel)) {
    throw new ConfigError('LLM_DEFAULT_MODEL', 'must look like provider/model, e.g. ollama/llama3.1:8b');
  }
  return config;
}

import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8000);
    expect(config.host).toBe('127.0.0.1');
    expect(config.env).toBe('development');
    expect(config.jwtAccessTtl).toBe(900);
    expect(config.jwtRefreshTtl).toBe(1_209_600);
    expect(config.registrationMode).toBe('closed');
    expect(config.rateLimit).toEqual({ max: 100, periodSeconds: 60 });
    expect(config.authRateLimitMax).toBe(20);
    expect(config.loginMaxFailures).toBe(5);
    expect(config.llm.ollamaBaseUrl).toBe('http://localhost:11434');
    expect(config.llm.redactCloudPrompts).toBe(true);
    expect(config.approvalTtlSeconds).toBe(86_400);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['REGISTRATION_MODE', 'sometimes'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['REDIS_URL', 'not a url'],
    ['REDACT_CLOUD_PROMPTS', 'perhaps'],
    ['LOG_LEVEL', 'loud'],
    ['CORS_ORIGINS', 'example.com/path'],
    ['TOOL_HTTP_ALLOWLIST', 'http://example.com'],
    ['LLM_DEFAULT_MODEL', 'gpt-4o'],
    ['CDSA_ENV', 'staging'],
  ])('refuses %s=%s with an error naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrowError(new RegExp(name));
  });

  it('bounds cloud content at INTERNAL by default and CONFIDENTIAL at most', () => {
    expect(loadConfig({}).llm.cloudMaxLabel).toBe('INTERNAL');
    expect(loadConfig({}).llm.localFallbackModel).toBeUndefined();
    expect(loadConfig({ CLOUD_MAX_LABEL: 'confidential' }).llm.cloudMaxLabel).toBe('CONFIDENTIAL');
    expect(loadConfig({ CLOUD_MAX_LABEL: 'PUBLIC' }).llm.cloudMaxLabel).toBe('PUBLIC');
    expect(() => loadConfig({ CLOUD_MAX_LABEL: 'RESTRICTED' })).toThrowError(/CLOUD_MAX_LABEL.*never goes to a cloud provider/);
    expect(() => loadConfig({ CLOUD_MAX_LABEL: 'SECRET' })).toThrowError(/CLOUD_MAX_LABEL.*PUBLIC, INTERNAL, CONFIDENTIAL/);
  });

  it('accepts only a local model as LOCAL_FALLBACK_MODEL', () => {
    expect(loadConfig({ LOCAL_FALLBACK_MODEL: 'ollama/llama3.1:8b' }).llm.localFallbackModel).toBe('ollama/llama3.1:8b');
    expect(loadConfig({ LOCAL_FALLBACK_MODEL: 'openai/qwen', OPENAI_LOCAL: 'true' }).llm.localFallbackModel).toBe('openai/qwen');
    expect(() => loadConfig({ LOCAL_FALLBACK_MODEL: 'openai/gpt-4o' })).toThrowError(/LOCAL_FALLBACK_MODEL.*OPENAI_LOCAL/);
    expect(() => loadConfig({ LOCAL_FALLBACK_MODEL: 'anthropic/claude' })).toThrowError(/LOCAL_FALLBACK_MODEL.*local model/);
    expect(() => loadConfig({ LOCAL_FALLBACK_MODEL: 'llama3' })).toThrowError(/LOCAL_FALLBACK_MODEL.*provider\/model/);
  });

  it('never echoes a database URL that may hold a password', () => {
    try {
      loadConfig({ DATABASE_URL: 'postgres://user:hunter2@' });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
    }
  });

  it('requires the three admin bootstrap variables together', () => {
    expect(() => loadConfig({ CDSA_ADMIN_USERNAME: 'root' })).toThrowError(/CDSA_ADMIN_USERNAME/);
    const config = loadConfig({
      CDSA_ADMIN_USERNAME: 'root',
      CDSA_ADMIN_EMAIL: 'root@example.com',
      CDSA_ADMIN_PASSWORD: 'a long admin password',
    });
    expect(config.admin?.username).toBe('root');
  });

  it('parses lists', () => {
    const config = loadConfig({ CORS_ORIGINS: 'https://a.example, http://b.example:3000', TOOL_HTTP_ALLOWLIST: 'API.example.com,127.0.0.1:8080' });
    expect(config.corsOrigins).toEqual(['https://a.example', 'http://b.example:3000']);
    expect(config.toolHttpAllowlist).toEqual(['api.example.com', '127.0.0.1:8080']);
  });

  it('requires MFA of managers and admins by default; MFA_REQUIRED_ROLES names roles only', () => {
    expect(loadConfig({}).mfaRequiredRoles).toEqual(['MANAGER', 'ADMIN']);
    expect(loadConfig({}).mfaStepUpSeconds).toBe(300);
    expect(loadConfig({ MFA_REQUIRED_ROLES: '' }).mfaRequiredRoles).toEqual([]);
    expect(loadConfig({ MFA_REQUIRED_ROLES: 'admin' }).mfaRequiredRoles).toEqual(['ADMIN']);
    expect(() => loadConfig({ MFA_REQUIRED_ROLES: 'MANAGER,ROOT' })).toThrow(/MFA_REQUIRED_ROLES/);
  });

  it('validates the OpenID Connect settings together', () => {
    const base = { OIDC_ISSUER_URL: 'https://idp.example', OIDC_CLIENT_ID: 'cdsa', OIDC_REDIRECT_URL: 'https://cdsa.example/api/v1/auth/oidc/callback' };
    expect(loadConfig({}).oidc).toBeUndefined();
    expect(loadConfig({ ...base, OIDC_ROLE_CLAIM: 'groups', OIDC_ROLE_MAP: 'cdsa-managers=MANAGER, ops=admin' }).oidc).toMatchObject({
      scopes: 'openid email profile',
      roleMap: { 'cdsa-managers': 'MANAGER', ops: 'ADMIN' },
      only: false,
    });
    expect(() => loadConfig({ ...base, OIDC_CLIENT_ID: '' })).toThrow(/OIDC_CLIENT_ID/);
    expect(() => loadConfig({ ...base, OIDC_ISSUER_URL: 'http://idp.example' })).toThrow(/OIDC_ISSUER_URL/);
    expect(() => loadConfig({ ...base, OIDC_SCOPES: 'email' })).toThrow(/OIDC_SCOPES/);
    expect(() => loadConfig({ ...base, OIDC_ROLE_CLAIM: 'groups', OIDC_ROLE_MAP: 'x=BOSS' })).toThrow(/OIDC_ROLE_MAP/);
    expect(() => loadConfig({ ...base, OIDC_ROLE_MAP: 'x=ADMIN' })).toThrow(/OIDC_ROLE_MAP/);
    expect(() => loadConfig({ ...base, OIDC_ONLY: 'true' })).toThrow(/OIDC_ONLY/);
    expect(() => loadConfig({ OIDC_ONLY: 'true' })).toThrow(/OIDC_ONLY/);
    expect(loadConfig({ ...base, OIDC_ONLY: 'true', OIDC_BREAK_GLASS_USERNAME: 'rescue' }).oidc).toMatchObject({ only: true, breakGlassUsername: 'rescue' });
  });
});

import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as oidc from 'openid-client';
import type { OidcConfig } from '../../../config.js';
import type { Db } from '../../../db/client.js';
import { withTransaction } from '../../../db/unit-of-work.js';
import { sha256Hex } from '../../../lib/crypto/hmac.js';
import { ConflictError, UnauthorizedError, UpstreamError } from '../../../lib/errors.js';
import type { KeyValueStore } from '../../../lib/infra/kv.js';
import { labelRank, type Label } from '../../../lib/labels.js';
import type { AuditRecorder } from '../../audit/audit.service.js';
import type { UserRow, UsersRepository } from '../../users/users.repository.js';
import type { AuthService, LoginResult, MfaChallengeResult } from '../auth.service.js';
import { hashPassword } from '../passwords.js';
import { roleAtLeast, type RequestContext, type Role } from '../permissions.js';
import type { SessionService } from '../sessions.service.js';
import type { IdentitiesRepository } from './identities.repository.js';

/** How long a started sign-in may take at the provider (state, nonce and PKCE verifier are kept this long, once). */
export const OIDC_LOGIN_TTL_SECONDS = 600;
/** The browser binding of a started sign-in: the callback must come from the browser that started it. */
export const OIDC_BINDING_COOKIE = 'cdsa_oidc';
const OUTBOUND_TIMEOUT_SECONDS = 10;
const CALLBACK_FAILED = 'Single sign-on failed; start again';

interface PendingLogin {
  codeVerifier: string;
  nonce: string;
  bindingHash: string;
}

export interface OidcServiceDeps {
  config: OidcConfig;
  db: Db;
  kv: KeyValueStore;
  usersRepository: Pick<UsersRepository, 'findById' | 'insert' | 'update'>;
  identities: IdentitiesRepository;
  sessions: Pick<SessionService, 'userChanged'>;
  auth: Pick<AuthService, 'openSession' | 'issueMfaChallenge'>;
  audit: Pick<AuditRecorder, 'record' | 'recordStandalone'>;
  now?: () => number;
  logger?: { warn(obj: object, msg: string): void };
}

const pendingKey = (state: string) => `identity:oidc-login:${sha256Hex(state)}`;

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** A username from the provider's preferred_username (or e-mail), in CDSA's username alphabet. */
function usernameCandidate(claims: oidc.IDToken, email: string | undefined): string {
  const raw = (typeof claims.preferred_username === 'string' ? claims.preferred_username : email?.split('@')[0]) ?? 'sso-user';
  const cleaned = raw.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48);
  return cleaned.length >= 3 ? cleaned : `sso-${cleaned}`.padEnd(3, '0');
}

/**
 * OpenID Connect sign-in (authorization code + PKCE, state and nonce) through openid-client. The ID token's signature
 * (against the provider's JWKS), iss, aud, exp, iat and nonce are checked by the library; state is single use.
 * Users are found by (issuer, subject); a first login links a local account only through an e-mail the provider has
 * verified, and otherwise provisions a new ANALYST. With OIDC_ROLE_CLAIM the role is re-evaluated at every login.
 */
export function createOidcService(deps: OidcServiceDeps) {
  const { config, db, kv, audit } = deps;
  const now = deps.now ?? (() => Date.now());
  let configuration: Promise<oidc.Configuration> | undefined;

  function discover(): Promise<oidc.Configuration> {
    configuration ??= (async () => {
      const issuer = new URL(config.issuerUrl);
      const execute = [oidc.enableNonRepudiationChecks, ...(issuer.protocol === 'http:' ? [oidc.allowInsecureRequests] : [])];
      const clientAuth = config.clientSecret ? oidc.ClientSecretPost(config.clientSecret) : oidc.None();
      const discovered = await oidc.discovery(issuer, config.clientId, config.clientSecret, clientAuth, { execute, timeout: OUTBOUND_TIMEOUT_SECONDS });
      discovered.timeout = OUTBOUND_TIMEOUT_SECONDS;
      return discovered;
    })().catch((error: unknown) => {
      // Retried at the next sign-in: the provider may just be down.
      configuration = undefined;
      deps.logger?.warn({ err: error }, 'OIDC discovery failed');
      throw new UpstreamError('oidc', 'The identity provider is not reachable', true);
    });
    return configuration;
  }

  /** A claim's values: a string or an array of strings (other shapes count as none). */
  function claimValues(claims: oidc.IDToken, name: string): string[] {
    const value = claims[name];
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : typeof value === 'string' ? [value] : [];
  }

  function mappedRole(claims: oidc.IDToken): Role | undefined {
    if (!config.roleClaim) return undefined;
    let role: Role = 'ANALYST';
    for (const item of claimValues(claims, config.roleClaim)) {
      const mapped = config.roleMap[item];
      if (mapped && roleAtLeast(mapped, role)) role = mapped;
    }
    return role;
  }

  /** The highest mapped clearance; null (the role's default) when none maps; undefined when clearances stay local. */
  function mappedClearance(claims: oidc.IDToken): Label | null | undefined {
    if (!config.clearanceClaim) return undefined;
    let clearance: Label | null = null;
    for (const item of claimValues(claims, config.clearanceClaim)) {
      const mapped = config.clearanceMap[item];
      if (mapped && (clearance === null || labelRank(mapped) > labelRank(clearance))) clearance = mapped;
    }
    return clearance;
  }

  async function provision(claims: oidc.IDToken, email: string, role: Role, context: RequestContext): Promise<UserRow> {
    // An unusable password: nobody knows it, so this account signs in through the provider only.
    const passwordHash = await hashPassword(randomBytes(32).toString('base64url'));
    const base = usernameCandidate(claims, email);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const username = attempt === 0 ? base : `${base.slice(0, 48)}-${randomBytes(3).toString('hex')}`;
      const created = await withTransaction(
        db,
        async (uow) => {
          const row = await deps.usersRepository.insert(uow.tx, {
            username,
            email,
            fullName: typeof claims.name === 'string' ? claims.name.slice(0, 200) : null,
            passwordHash,
            role,
            clearance: mappedClearance(claims) ?? null,
          });
          if (!row) return undefined;
          if (!(await deps.identities.link(uow.tx, { userId: row.id, issuer: claims.iss, subject: claims.sub, at: new Date(now()) }))) {
            throw new ConflictError('This provider account was linked concurrently; sign in again');
          }
          await audit.record(uow.tx, {
            eventType: 'USER_CREATED',
            userId: row.id,
            resourceType: 'user',
            resourceId: row.id,
            details: { username: row.username, role: row.role, origin: 'sso', issuer: claims.iss },
            context,
          });
          return row;
        },
        deps.logger,
      );
      if (created) return created;
      // The e-mail is taken (and was not verified, or linking would have happened): never take that account over.
      if (await deps.identities.findUserByEmail(db, email)) break;
    }
    throw new ConflictError('An account with this e-mail address already exists; it can be linked only through an e-mail address the identity provider has verified');
  }

  /** The user behind verified ID-token claims: linked before, linked now through a verified e-mail, or new. */
  async function resolveUser(claims: oidc.IDToken, context: RequestContext): Promise<{ user: UserRow; how: 'linked' | 'new_link' | 'provisioned' }> {
    const linkedId = await deps.identities.findUserId(db, claims.iss, claims.sub);
    if (linkedId) {
      const user = await deps.usersRepository.findById(db, linkedId);
      if (user) return { user, how: 'linked' };
    }
    const email = typeof claims.email === 'string' ? claims.email.toLowerCase() : undefined;
    if (!email) throw new UnauthorizedError('The identity provider did not send an e-mail address; CDSA needs one to create your account');
    const existing = await deps.identities.findUserByEmail(db, email);
    if (existing) {
      if (claims.email_verified !== true) {
        throw new ConflictError('An account with this e-mail address already exists; it can be linked only through an e-mail address the identity provider has verified');
      }
      const linked = await withTransaction(
        db,
        async (uow) => {
          if (!(await deps.identities.link(uow.tx, { userId: existing.id, issuer: claims.iss, subject: claims.sub, at: new Date(now()) }))) return false;
          await audit.record(uow.tx, {
            eventType: 'USER_UPDATED',
            userId: existing.id,
            resourceType: 'user',
            resourceId: existing.id,
            details: { linked_identity: { issuer: claims.iss, subject: claims.sub }, by: 'verified_email' },
            context,
          });
          return true;
        },
        deps.logger,
      );
      if (!linked) throw new ConflictError('This provider account is already linked to another user');
      return { user: existing, how: 'new_link' };
    }
    return { user: await provision(claims, email, mappedRole(claims) ?? 'ANALYST', context), how: 'provisioned' };
  }

  /**
   * The provider's role and clearance for this login (OIDC_ROLE_CLAIM, OIDC_CLEARANCE_CLAIM), applied at every login
   * when they differ from the stored ones, in one transaction with their audit row.
   */
  async function syncRole(user: UserRow, claims: oidc.IDToken, context: RequestContext): Promise<UserRow> {
    const role = mappedRole(claims);
    const clearance = mappedClearance(claims);
    const patch: { role?: Role; clearance?: Label | null } = {};
    const changes: Record<string, { from: string | null; to: string | null }> = {};
    if (role !== undefined && role !== user.role) {
      patch.role = role;
      changes.role = { from: user.role, to: role };
    }
    if (clearance !== undefined && clearance !== (user.clearance ?? null)) {
      patch.clearance = clearance;
      changes.clearance = { from: user.clearance ?? null, to: clearance };
    }
    if (Object.keys(patch).length === 0) return user;
    return withTransaction(
      db,
      async (uow) => {
        const updated = await deps.usersRepository.update(uow.tx, user.id, patch);
        await audit.record(uow.tx, {
          eventType: 'USER_UPDATED',
          userId: user.id,
          resourceType: 'user',
          resourceId: user.id,
          details: { changes, by: 'oidc_claims', role_claim: config.roleClaim ?? null, clearance_claim: config.clearanceClaim ?? null },
          context,
        });
        deps.sessions.userChanged(uow, user.id);
        return updated ?? { ...user, ...patch };
      },
      deps.logger,
    );
  }

  return {
    /** Where to send the browser, and the binding cookie value to set on it. */
    async startLogin(): Promise<{ url: string; binding: string }> {
      const configuration = await discover();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const binding = randomBytes(32).toString('base64url');
      const pending: PendingLogin = { codeVerifier, nonce, bindingHash: sha256Hex(binding) };
      await kv.set(pendingKey(state), JSON.stringify(pending), OIDC_LOGIN_TTL_SECONDS);
      const url = oidc.buildAuthorizationUrl(configuration, {
        redirect_uri: config.redirectUrl,
        scope: config.scopes,
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return { url: url.href, binding };
    },

    /**
     * The provider's redirect back: `state` must be one this service issued (and is spent now), from the browser
     * that started it; then the code is exchanged (with the PKCE verifier) and the ID token checked.
     */
    async callback(query: Record<string, string>, binding: string | undefined, context: RequestContext): Promise<LoginResult | MfaChallengeResult> {
      const state = query.state;
      if (!state) throw new UnauthorizedError(CALLBACK_FAILED);
      const raw = await kv.take(pendingKey(state));
      if (!raw) throw new UnauthorizedError(CALLBACK_FAILED);
      const pending = JSON.parse(raw) as PendingLogin;
      if (!binding || !sameText(sha256Hex(binding), pending.bindingHash)) throw new UnauthorizedError(CALLBACK_FAILED);
      if (query.error) throw new UnauthorizedError(`The identity provider refused the sign-in (${query.error.slice(0, 64)})`);

      const configuration = await discover();
      const callbackUrl = new URL(config.redirectUrl);
      for (const [name, value] of Object.entries(query)) callbackUrl.searchParams.set(name, value);
      let claims: oidc.IDToken;
      try {
        const tokens = await oidc.authorizationCodeGrant(configuration, callbackUrl, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        const verified = tokens.claims();
        if (!verified) throw new Error('no ID token');
        claims = verified;
        // Many providers put profile claims only in the UserInfo response when an access token is issued; it is
        // fetched for the same subject (checked by the library) and never overrides iss, sub, aud or nonce.
        const mappedClaims = [config.roleClaim, config.clearanceClaim].filter((name): name is string => name !== undefined);
        if (claims.email === undefined || mappedClaims.some((name) => claims[name] === undefined)) {
          const info = await oidc.fetchUserInfo(configuration, tokens.access_token, claims.sub);
          const profile: Record<string, oidc.JsonValue> = {};
          for (const name of ['email', 'email_verified', 'name', 'preferred_username', ...mappedClaims]) {
            if (claims[name] === undefined && info[name] !== undefined) profile[name] = info[name];
          }
          claims = { ...claims, ...profile };
        }
      } catch (error) {
        // Which check failed is for the operator; the browser gets one message.
        deps.logger?.warn({ err: error instanceof Error ? { name: error.name, message: error.message, code: (error as { code?: unknown }).code } : error }, 'OIDC callback refused');
        await audit.recordStandalone({
          eventType: 'LOGIN_FAILED',
          userId: null,
          resourceType: 'user',
          resourceId: null,
          details: { reason: 'sso_callback_refused', issuer: config.issuerUrl },
          context,
        });
        throw new UnauthorizedError(CALLBACK_FAILED);
      }

      const resolved = await resolveUser(claims, context);
      if (!resolved.user.isActive) throw new UnauthorizedError('This account is deactivated');
      const user = await syncRole(resolved.user, claims, context);
      await deps.identities.touch(db, claims.iss, claims.sub, new Date(now()));
      if (user.mfaEnabled) return deps.auth.issueMfaChallenge(user.id, ['fed']);
      return deps.auth.openSession(
        user,
        { amr: ['fed'], mfaVerified: false, audit: [{ eventType: 'SSO_LOGIN', details: { issuer: claims.iss, subject: claims.sub, account: resolved.how } }] },
        context,
      );
    },
  };
}

export type OidcService = ReturnType<typeof createOidcService>;

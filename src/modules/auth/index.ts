import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConfigError } from '../../config.js';
import { ConflictError, UnauthorizedError, ValidationError } from '../../lib/errors.js';
import { dependencyFailureMessage } from '../../lib/dependency-errors.js';
import { createDegradingKeyValueStore, createMemoryKeyValueStore } from '../../lib/infra/kv.js';
import { createUsersRepository } from '../users/users.repository.js';
import { usersRoutes } from '../users/users.routes.js';
import { createUsersService, type UsersService } from '../users/users.service.js';
import { authRoutes } from './auth.routes.js';
import { createFirstRunSetup, type FirstRunSetup } from './first-run-setup.js';
import { createAuthService, type AuthService, type SecurityAlertSender } from './auth.service.js';
import { createLoginThrottle } from './login-throttle.js';
import type { Actor } from './permissions.js';
import { createSessionsRepository } from './sessions.repository.js';
import { createSessionService, type RevocationEvent } from './sessions.service.js';
import { createTokenIssuer } from './tokens.js';
import { neighbour } from '../wiring.js';
import { createMfaRepository } from './mfa/mfa.repository.js';
import { mfaRoutes } from './mfa/mfa.routes.js';
import { createMfaService, totpSecretAad } from './mfa/mfa.service.js';
import { createIdentitiesRepository } from './oidc/identities.repository.js';
import { oidcRoutes } from './oidc/oidc.routes.js';
import { createOidcService } from './oidc/oidc.service.js';

export type { RevocationEvent } from './sessions.service.js';

/** What other modules use of identity. */
export interface Identity {
  auth: AuthService;
  /**
   * Called on every instance when a session ends (logout, refresh-token reuse, password change) or all sessions of a
   * user end (`sessionId` absent: deactivation, admin revocation). Streams of those sessions should close.
   */
  onRevoked(listener: (event: RevocationEvent) => void): () => void;
  /** Resolves the caller from `Authorization: Bearer` (or a stream ticket where the route accepts one). */
  authenticate(request: FastifyRequest): Promise<Actor>;
  /** The first administrator, when none exists: the server prints the token (src/runtime.ts). */
  setup: FirstRunSetup;
}

declare module 'fastify' {
  interface FastifyInstance {
    identity: Identity;
    users: UsersService;
  }
}

/** The notifications module registers after this one; it is looked up when an alert is due. */
function securityAlertSender(app: FastifyInstance): () => SecurityAlertSender {
  const notifications = neighbour(app, 'notifications');
  const send: SecurityAlertSender = async (input) => {
    await notifications().notify({ ...input, type: 'SECURITY_ALERT', priority: 'high' });
  };
  return () => send;
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

export const identityModule = fp(
  async (app) => {
    const { config, infra } = app;
    const db = infra.database.db;
    const usersRepository = createUsersRepository();
    const sessionsRepository = createSessionsRepository();
    const sessions = createSessionService({ db, repository: sessionsRepository, pubsub: infra.pubsub, logger: app.log });
    // Failed-login counters are shared through Redis; while it is down each instance counts on its own (a weaker
    // limit, said in the log) rather than nobody being able to sign in.
    const throttleStore = infra.redis
      ? createDegradingKeyValueStore(infra.kv, createMemoryKeyValueStore(), {
          onDegraded: (error) =>
            app.log.warn({ err: dependencyFailureMessage(error) }, 'Redis is unavailable: login throttling counts failures per instance until it returns'),
          onRestored: () => app.log.info('Redis is back: login throttling is shared by every instance again'),
        })
      : infra.kv;
    const throttle = createLoginThrottle({
      kv: throttleStore,
      maxAccountFailures: config.loginMaxFailures,
      maxClientFailures: config.loginMaxClientFailures,
    });
    const users = createUsersService({
      db,
      repository: usersRepository,
      audit: app.audit,
      sessions,
      passwordAttempts: {
        begin: (userId) => throttle.beginAccountAttempt(`user:${userId}`),
        succeeded: (userId) => throttle.recordSuccess(`user:${userId}`),
      },
      logger: app.log,
    });
    const tokens = await createTokenIssuer({
      secret: app.secrets.jwtSecretKey,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      accessTtlSeconds: config.jwtAccessTtl,
    });
    const auth = createAuthService({
      db,
      users,
      usersRepository,
      sessionsRepository,
      sessions,
      tokens,
      throttle,
      mfaChallenges: infra.kv,
      audit: app.audit,
      registrationMode: config.registrationMode,
      mfaRequiredRoles: config.mfaRequiredRoles,
      ...(config.oidc?.only && config.oidc.breakGlassUsername ? { passwordLogin: { breakGlassUsername: config.oidc.breakGlassUsername } } : {}),
      refreshTtlSeconds: config.jwtRefreshTtl,
      sessionMaxAgeSeconds: config.sessionMaxAgeSeconds,
      securityAlert: securityAlertSender(app),
      logger: app.log,
    });

    // The field cipher belongs to the vault module, which registers after this one: looked up when a secret is used.
    const mfa = createMfaService({
      db,
      repository: createMfaRepository(),
      usersRepository,
      sessionsRepository,
      sessions,
      auth,
      throttle,
      fieldCipher: {
        encrypt: (value, aad) => app.fieldCipher.encrypt(value, aad),
        decrypt: (ciphertext, aad) => app.fieldCipher.decrypt(ciphertext, aad),
      },
      audit: app.audit,
      stepUpSeconds: config.mfaStepUpSeconds,
      logger: app.log,
    });
    app.addHook('onReady', async () => {
      // Key rotation (POST /vault/rotate, cdsa vault rotate) rewraps TOTP secrets with every other encrypted column.
      app.fieldCipher.registerEncryptedColumn({
        name: 'user_totp.secret_ciphertext',
        table: 'user_totp',
        idColumn: 'user_id',
        column: 'secret_ciphertext',
        aad: (row) => totpSecretAad(row.id),
      });
    });

    async function authenticate(request: FastifyRequest): Promise<Actor> {
      const query = request.query;
      const params = typeof query === 'object' && query !== null ? (query as Record<string, unknown>) : {};
      // A token in a URL ends up in logs, histories and Referer headers.
      if ('access_token' in params) {
        throw new UnauthorizedError('Access tokens are not accepted in URLs; send them in the Authorization header');
      }
      const header = request.headers.authorization;
      if (header !== undefined) {
        const match = BEARER.exec(header);
        if (!match) throw new UnauthorizedError('Malformed Authorization header; expected "Bearer <token>"');
        return auth.authenticateAccessToken(match[1]!);
      }
      const ticket = params.ticket;
      if (request.routeOptions.config.acceptsStreamTicket && request.method === 'GET' && typeof ticket === 'string') {
        const actor = await auth.authenticateStreamTicket(ticket);
        // Spent: the route's own query schema never sees it.
        delete params.ticket;
        return actor;
      }
      throw new UnauthorizedError();
    }

    await sessions.start();
    app.addHook('onClose', async () => {
      await sessions.stop();
    });

    if (config.admin) {
      try {
        const created = await users.ensureBootstrapAdmin(config.admin);
        if (created) app.log.info({ username: config.admin.username }, 'bootstrap administrator created');
      } catch (error) {
        if (error instanceof ValidationError) {
          throw new ConfigError('CDSA_ADMIN_PASSWORD', error.errors.map((issue) => `password ${issue.detail}`).join('; '));
        }
        if (error instanceof ConflictError) {
          throw new ConfigError('CDSA_ADMIN_EMAIL', 'another user already has this e-mail address');
        }
        throw error;
      }
    }

    const setup = createFirstRunSetup({
      users,
      hasAdmin: async () => (await usersRepository.activeIdsByRole(db, ['ADMIN'])).length > 0,
    });

    app.decorate('identity', { auth, onRevoked: sessions.onRevoked, authenticate, setup });
    app.decorate('users', users);

    app.apiV1.routes(authRoutes, { auth, users, setup });
    app.apiV1.routes(mfaRoutes, { mfa });
    if (config.oidc) {
      const oidc = createOidcService({
        config: config.oidc,
        db,
        kv: infra.kv,
        usersRepository,
        identities: createIdentitiesRepository(),
        sessions,
        auth,
        audit: app.audit,
        logger: app.log,
      });
      app.apiV1.routes(oidcRoutes, { oidc, secureCookie: config.oidc.redirectUrl.startsWith('https:') });
    }
    app.apiV1.routes(usersRoutes, { users });
  },
  { name: 'module-identity', dependencies: ['infra', 'auth', 'module-audit'] },
);

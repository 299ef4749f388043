import { randomBytes } from 'node:crypto';
import type { Db } from '../../db/client.js';
import type { ApiKeyScope } from '../../db/schema/api-keys.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { sha256Hex, timingSafeEqualStrings } from '../../lib/crypto/index.js';
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../lib/errors.js';
import { effectiveClearance } from '../../lib/labels.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, type Actor, type RequestContext } from '../auth/permissions.js';
import type { ApiKeyRow, ApiKeysRepository } from './api-keys.repository.js';

export interface ApiKeyView {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  scopes: ApiKeyScope[];
  expires_at: string;
  created_at: string;
  last_used_at: string | null;
}

export interface CreatedApiKey extends ApiKeyView {
  /** The key itself: in this response only, never again. */
  key: string;
}

export interface CreateApiKeyInput {
  name: string;
  scopes: ApiKeyScope[];
  expires_in_days?: number;
}

export interface ApiKeyLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ApiKeysServiceDeps {
  db: Db;
  repository: ApiKeysRepository;
  audit: Pick<AuditRecorder, 'record'>;
  logger: ApiKeyLogger;
  now?: () => Date;
  /** last_used_at is written at most once per key per this many ms (default 60 s). */
  touchIntervalMs?: number;
}

/** The authenticated key of a request. */
export interface ApiKeyPrincipal {
  actor: Actor;
  keyId: string;
  scopes: readonly ApiKeyScope[];
}

export const API_KEY_PREFIX = 'cdsa_';
export const MAX_EXPIRY_DAYS = 365;
export const DEFAULT_EXPIRY_DAYS = 90;
/** Live keys one user may hold. */
export const MAX_ACTIVE_KEYS = 50;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 256 bits in base 62 take 43 digits. */
const KEY_DIGITS = 43;
/** Characters after `cdsa_` kept in the clear: enough to find the row, far too few to guess the rest. */
const PREFIX_DIGITS = 8;
const KEY_FORMAT = new RegExp(`^${API_KEY_PREFIX}[0-9A-Za-z]{${KEY_DIGITS}}$`);
const DAY_MS = 86_400_000;
/** One answer for every unusable key, so a caller learns nothing about which check failed. */
const INVALID_KEY_MESSAGE = 'Invalid, expired or revoked API key';

function base62(bytes: Buffer): string {
  let n = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  while (n > 0n) {
    out = BASE62[Number(n % 62n)]! + out;
    n /= 62n;
  }
  return out.padStart(KEY_DIGITS, '0');
}

/** A new key: `cdsa_` and 256 random bits in base 62. */
export function generateApiKey(): { key: string; prefix: string; hash: string } {
  const key = `${API_KEY_PREFIX}${base62(randomBytes(32))}`;
  return { key, prefix: key.slice(0, API_KEY_PREFIX.length + PREFIX_DIGITS), hash: sha256Hex(key) };
}

/** Whether a bearer credential is shaped like an API key (as opposed to an access token). */
export function looksLikeApiKey(credential: string): boolean {
  return credential.startsWith(API_KEY_PREFIX);
}

function present(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    user_id: row.userId,
    name: row.name,
    prefix: row.prefix,
    scopes: [...row.scopes],
    expires_at: row.expiresAt.toISOString(),
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt ? row.lastUsedAt.toISOString() : null,
  };
}

/**
 * API keys (CONTRACT §8): created by a user for themselves, shown once, stored as a hash. A key acts as its user with
 * the user's role and clearance as they are at each request, within its scopes; it stops working at once when revoked,
 * expired, or its user deactivated. Nothing about a key is cached, so every instance sees a revocation on the next
 * request.
 */
export function createApiKeysService(deps: ApiKeysServiceDeps) {
  const { db, repository, audit, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const touchIntervalMs = deps.touchIntervalMs ?? 60_000;

  return {
    async create(actor: Actor, input: CreateApiKeyInput, context: RequestContext): Promise<CreatedApiKey> {
      const at = now();
      const days = input.expires_in_days ?? DEFAULT_EXPIRY_DAYS;
      const scopes = [...new Set(input.scopes)];
      const generated = generateApiKey();
      const row = await withTransaction(
        db,
        async (uow) => {
          if ((await repository.countActive(uow.tx, actor.userId, at)) >= MAX_ACTIVE_KEYS) {
            throw new ConflictError(`You already have ${MAX_ACTIVE_KEYS} API keys: revoke one first`);
          }
          const inserted = await repository.insert(uow.tx, {
            userId: actor.userId,
            name: input.name,
            prefix: generated.prefix,
            keyHash: generated.hash,
            scopes,
            expiresAt: new Date(at.getTime() + days * DAY_MS),
            createdAt: at,
          });
          await audit.record(uow.tx, {
            eventType: 'API_KEY_CREATED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'api_key',
            resourceId: inserted.id,
            details: { name: inserted.name, prefix: inserted.prefix, scopes, expires_at: inserted.expiresAt.toISOString() },
            context,
          });
          return inserted;
        },
        logger,
      );
      return { ...present(row), key: generated.key };
    },

    /** The caller's keys; with `users:manage`, any user's (`userId`). Revoked keys are not listed. */
    async list(actor: Actor, query: { userId?: string; limit?: number; cursor?: string }): Promise<Page<ApiKeyView>> {
      const owner = query.userId ?? actor.userId;
      if (owner !== actor.userId && !hasPermission(actor.role, 'users:manage')) {
        throw new ForbiddenError("Listing another user's API keys needs the users:manage permission");
      }
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { c: 'timestamp', id: 'uuid' });
      const rows = await repository.listForUser(db, owner, limit + 1, after && { createdAt: new Date(after.c), id: after.id });
      return toPage(rows, limit, (row) => ({ c: row.createdAt.toISOString(), id: row.id }), present);
    },

    /** Revokes the caller's key, or anyone's with `users:manage`; another user's key is otherwise not found. */
    async revoke(actor: Actor, id: string, context: RequestContext): Promise<void> {
      await withTransaction(
        db,
        async (uow) => {
          const key = await repository.findActiveById(uow.tx, id);
          if (!key || (key.userId !== actor.userId && !hasPermission(actor.role, 'users:manage'))) throw new NotFoundError('API key');
          const revoked = await repository.revoke(uow.tx, id, actor.userId, now());
          if (!revoked) throw new NotFoundError('API key');
          await audit.record(uow.tx, {
            eventType: 'API_KEY_REVOKED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'api_key',
            resourceId: id,
            details: { name: key.name, prefix: key.prefix, owner_id: key.userId, by_owner: key.userId === actor.userId },
            context,
          });
        },
        logger,
      );
    },

    /**
     * The key's user as an actor, if the key is live and has `scope` (one of them, for a list): 401 for a key that is unknown, revoked, expired or
     * whose user is deactivated; 403 for a live key without the scope. One indexed read per request, no cache.
     */
    async authenticate(presented: string, scope: ApiKeyScope | readonly ApiKeyScope[]): Promise<ApiKeyPrincipal> {
      if (!KEY_FORMAT.test(presented)) throw new UnauthorizedError(INVALID_KEY_MESSAGE);
      const hash = sha256Hex(presented);
      const candidates = await repository.findCredentials(db, presented.slice(0, API_KEY_PREFIX.length + PREFIX_DIGITS));
      const found = candidates.find((candidate) => timingSafeEqualStrings(candidate.keyHash, hash));
      const at = now();
      if (!found || found.revokedAt !== null || found.expiresAt <= at || !found.user.isActive) {
        throw new UnauthorizedError(INVALID_KEY_MESSAGE);
      }
      const wanted: readonly ApiKeyScope[] = typeof scope === 'string' ? [scope] : scope;
      if (!wanted.some((s) => found.scopes.includes(s))) {
        throw new ForbiddenError(`This API key does not have the ${wanted.join(' or ')} scope`);
      }
      if (found.lastUsedAt === null || at.getTime() - found.lastUsedAt.getTime() >= touchIntervalMs) {
        // Bookkeeping, not a gate: the request does not wait for it.
        repository.touch(db, found.id, at, new Date(at.getTime() - touchIntervalMs)).catch((error: unknown) => {
          logger.warn({ err: error instanceof Error ? error.message : String(error), api_key_id: found.id }, 'could not record API key use');
        });
      }
      const user = found.user;
      return {
        keyId: found.id,
        scopes: found.scopes,
        actor: {
          userId: user.id,
          username: user.username,
          role: user.role,
          // Audit rows of a key's requests name the key where a login's would name its session.
          sessionId: found.id,
          clearance: effectiveClearance(user),
          apiKeyId: found.id,
        },
      };
    },
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;

import type { Db } from '../../db/client.js';
import type { UnitOfWork } from '../../db/unit-of-work.js';
import type { PubSub } from '../../lib/infra/pubsub.js';
import type { UserRow } from '../users/users.repository.js';
import type { SessionsRepository } from './sessions.repository.js';

/** Sent on `identity.revoked` to every instance; `changed` only refreshes cached user data (role, profile). */
export const REVOCATION_CHANNEL = 'identity.revoked';

export interface RevocationEvent {
  userId: string;
  /** Absent: every session of the user. */
  sessionId?: string;
}

interface ChannelMessage extends RevocationEvent {
  kind: 'revoked' | 'changed';
}

export type CachedUser = Omit<UserRow, 'passwordHash'>;

/** What the per-request check needs, cached briefly in process memory. */
export interface SessionState {
  sessionId: string;
  userId: string;
  expiresAt: number;
  revoked: boolean;
  /** Authentication methods of the login (RFC 8176), and the last second-factor verification (ms) in this session. */
  amr: string[];
  mfaVerifiedAt: number | null;
  user: CachedUser;
}

export interface SessionServiceDeps {
  db: Db;
  repository: Pick<SessionsRepository, 'findWithUser' | 'revoke' | 'revokeAllOfUser'>;
  pubsub: PubSub;
  /** How long a cached state may be trusted if an invalidation message were lost (Redis down). */
  cacheTtlMs?: number;
  maxCachedSessions?: number;
  now?: () => number;
  logger?: { warn(obj: object, msg: string): void };
}

interface CacheEntry {
  state: SessionState | null;
  loadedAt: number;
}

/**
 * Session validity for every authenticated request. Reads come from a small in-memory cache; every change that ends
 * a session or alters a user is published on `identity.revoked` after its commit, and each instance drops the
 * affected entries when the message arrives, so a revoked token stops working at once on every instance. The TTL
 * only bounds staleness if a message is lost.
 */
export function createSessionService(deps: SessionServiceDeps) {
  const ttlMs = deps.cacheTtlMs ?? 10_000;
  const maxEntries = deps.maxCachedSessions ?? 50_000;
  const now = deps.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const loading = new Map<string, Promise<SessionState | null>>();
  const listeners = new Set<(event: RevocationEvent) => void>();
  // Bumped by every invalidation: a load that started before one must not repopulate the cache with stale state.
  let generation = 0;
  let unsubscribe: (() => Promise<void>) | undefined;

  function invalidate(message: ChannelMessage): void {
    generation += 1;
    if (message.sessionId) {
      cache.delete(message.sessionId);
      if (message.kind === 'revoked') {
        // The user row is unchanged, but keep the entry out until the next read sees revoked_at.
        return;
      }
    }
    for (const [sessionId, entry] of cache) {
      if (entry.state === null || entry.state.userId === message.userId) cache.delete(sessionId);
    }
  }

  function handle(raw: string): void {
    let message: ChannelMessage;
    try {
      message = JSON.parse(raw) as ChannelMessage;
    } catch {
      return;
    }
    if (typeof message.userId !== 'string') return;
    invalidate(message);
    if (message.kind !== 'revoked') return;
    const event: RevocationEvent = message.sessionId ? { userId: message.userId, sessionId: message.sessionId } : { userId: message.userId };
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        deps.logger?.warn({ err: error }, 'revocation listener failed');
      }
    }
  }

  async function publish(message: ChannelMessage): Promise<void> {
    // Local first, synchronously: this instance must not serve the old state even if the broker is slow.
    invalidate(message);
    await deps.pubsub.publish(REVOCATION_CHANNEL, JSON.stringify(message));
  }

  async function load(sessionId: string): Promise<SessionState | null> {
    const found = await deps.repository.findWithUser(deps.db, sessionId);
    if (!found) return null;
    const { passwordHash: _hash, ...user } = found.user;
    return {
      sessionId,
      userId: found.session.userId,
      expiresAt: found.session.expiresAt.getTime(),
      revoked: found.session.revokedAt !== null,
      amr: found.session.amr,
      mfaVerifiedAt: found.session.mfaVerifiedAt?.getTime() ?? null,
      user,
    };
  }

  return {
    async start(): Promise<void> {
      unsubscribe = await deps.pubsub.subscribe(REVOCATION_CHANNEL, handle);
    },

    async stop(): Promise<void> {
      await unsubscribe?.();
      unsubscribe = undefined;
      cache.clear();
      listeners.clear();
    },

    /** The session and its user, or null when there is no such session. Validity is for the caller to judge. */
    async resolve(sessionId: string): Promise<SessionState | null> {
      const cached = cache.get(sessionId);
      if (cached && now() - cached.loadedAt < ttlMs) return cached.state;
      const pending = loading.get(sessionId);
      if (pending) return pending;
      const startedAt = generation;
      const promise = load(sessionId).finally(() => loading.delete(sessionId));
      loading.set(sessionId, promise);
      const state = await promise;
      if (generation === startedAt) {
        if (cache.size >= maxEntries) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        cache.delete(sessionId);
        cache.set(sessionId, { state, loadedAt: now() });
      }
      return state;
    },

    /** Ends one session; announced after the commit. False when it had already ended. */
    async revokeSession(uow: UnitOfWork, input: { userId: string; sessionId: string; reason: string }): Promise<boolean> {
      const revoked = await deps.repository.revoke(uow.tx, input.sessionId, input.reason, new Date(now()));
      if (revoked) uow.afterCommit(() => publish({ kind: 'revoked', userId: input.userId, sessionId: input.sessionId }));
      return revoked;
    },

    /** Ends every session of a user (but `exceptSessionId`); returns the ids ended, announced after the commit. */
    async revokeUserSessions(uow: UnitOfWork, input: { userId: string; reason: string; exceptSessionId?: string }): Promise<string[]> {
      const ids = await deps.repository.revokeAllOfUser(uow.tx, input.userId, input.reason, new Date(now()), input.exceptSessionId);
      uow.afterCommit(async () => {
        if (input.exceptSessionId) {
          for (const sessionId of ids) await publish({ kind: 'revoked', userId: input.userId, sessionId });
          await publish({ kind: 'changed', userId: input.userId });
        } else {
          await publish({ kind: 'revoked', userId: input.userId });
        }
      });
      return ids;
    },

    /** This session's own state changed (a step-up): its cached copies are dropped everywhere after the commit. */
    sessionChanged(uow: UnitOfWork, userId: string, sessionId: string): void {
      uow.afterCommit(() => publish({ kind: 'changed', userId, sessionId }));
    },

    /** The user's role, status or profile changed: cached copies are dropped everywhere after the commit. */
    userChanged(uow: UnitOfWork, userId: string): void {
      uow.afterCommit(() => publish({ kind: 'changed', userId }));
    },

    onRevoked(listener: (event: RevocationEvent) => void): () => void {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    cachedSessionCount(): number {
      return cache.size;
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;

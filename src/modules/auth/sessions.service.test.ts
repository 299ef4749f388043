import { describe, expect, it } from 'vitest';
import type { Db, Tx } from '../../db/client.js';
import type { UnitOfWork } from '../../db/unit-of-work.js';
import { createMemoryPubSub, type PubSub } from '../../lib/infra/pubsub.js';
import type { UserRow } from '../users/users.repository.js';
import type { SessionsRepository, SessionWithUser } from './sessions.repository.js';
import { createSessionService, REVOCATION_CHANNEL, type RevocationEvent } from './sessions.service.js';

const USER = '11111111-1111-4111-8111-111111111111';

function user(role: UserRow['role'] = 'ANALYST'): UserRow {
  const at = new Date('2026-01-01T00:00:00.000Z');
  return { id: USER, username: 'ada', email: 'ada@example.test', fullName: null, passwordHash: 'h', role, isActive: true, clearance: null, mfaEnabled: false, createdAt: at, updatedAt: at, lastLoginAt: null };
}

/** A stand-in for the table: counts reads so the tests can see what the cache saves. */
function fakeRepository() {
  const rows = new Map<string, SessionWithUser>();
  let reads = 0;
  let gate: Promise<void> | undefined;
  const repository: Pick<SessionsRepository, 'findWithUser' | 'revoke' | 'revokeAllOfUser'> = {
    async findWithUser(_db, sessionId) {
      reads += 1;
      const snapshot = rows.get(sessionId);
      const copy = snapshot ? { session: { ...snapshot.session }, user: { ...snapshot.user } } : undefined;
      if (gate) await gate;
      return copy;
    },
    async revoke(_db, sessionId, reason, now) {
      const row = rows.get(sessionId);
      if (!row || row.session.revokedAt) return false;
      row.session.revokedAt = now;
      row.session.revokedReason = reason;
      return true;
    },
    async revokeAllOfUser(_db, userId, reason, now, except) {
      const ids: string[] = [];
      for (const row of rows.values()) {
        if (row.session.userId === userId && !row.session.revokedAt && row.session.id !== except) {
          row.session.revokedAt = now;
          row.session.revokedReason = reason;
          ids.push(row.session.id);
        }
      }
      return ids;
    },
  };
  const add = (id: string) =>
    rows.set(id, {
      session: { id, userId: USER, createdAt: new Date(), expiresAt: new Date(Date.now() + 60_000), lastUsedAt: null, revokedAt: null, revokedReason: null, amr: ['pwd'], mfaVerifiedAt: null, ipAddress: null, userAgent: null },
      user: user(),
    });
  return {
    repository,
    rows,
    add,
    reads: () => reads,
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

async function unitOfWork<T>(work: (uow: UnitOfWork) => Promise<T>): Promise<T> {
  const tasks: (() => unknown)[] = [];
  const result = await work({ tx: {} as Tx, afterCommit: (task) => tasks.push(task) });
  for (const task of tasks) await task();
  return result;
}

function service(repo: ReturnType<typeof fakeRepository>, pubsub: PubSub = createMemoryPubSub()) {
  return createSessionService({ db: {} as Db, repository: repo.repository, pubsub, cacheTtlMs: 60_000 });
}

describe('session validity cache', () => {
  it('serves repeated checks from memory', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    const sessions = service(repo);
    await sessions.start();
    for (let i = 0; i < 5; i += 1) expect((await sessions.resolve('s1'))?.revoked).toBe(false);
    expect(repo.reads()).toBe(1);
  });

  it('a revocation is visible at once on this instance and, through pub/sub, on another', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    const pubsub = createMemoryPubSub();
    const a = service(repo, pubsub);
    const b = service(repo, pubsub);
    await a.start();
    await b.start();
    await a.resolve('s1');
    await b.resolve('s1');
    const heard: RevocationEvent[] = [];
    b.onRevoked((event) => heard.push(event));

    await unitOfWork((uow) => a.revokeSession(uow, { userId: USER, sessionId: 's1', reason: 'logout' }));
    expect((await a.resolve('s1'))?.revoked).toBe(true);
    expect((await b.resolve('s1'))?.revoked).toBe(true);
    expect(heard).toEqual([{ userId: USER, sessionId: 's1' }]);
  });

  it('a user change drops every cached session of that user (the new role applies at once)', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    repo.add('s2');
    const sessions = service(repo);
    await sessions.start();
    await sessions.resolve('s1');
    await sessions.resolve('s2');
    for (const row of repo.rows.values()) row.user.role = 'ADMIN';
    await unitOfWork(async (uow) => sessions.userChanged(uow, USER));
    expect((await sessions.resolve('s1'))?.user.role).toBe('ADMIN');
    expect((await sessions.resolve('s2'))?.user.role).toBe('ADMIN');
  });

  it('a load that started before an invalidation does not put stale state back in the cache', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    const sessions = service(repo);
    await sessions.start();
    const release = repo.hold();
    const stale = sessions.resolve('s1');
    await unitOfWork((uow) => sessions.revokeSession(uow, { userId: USER, sessionId: 's1', reason: 'logout' }));
    release();
    expect((await stale)?.revoked).toBe(false);
    expect((await sessions.resolve('s1'))?.revoked).toBe(true);
  });

  it('revoking all sessions announces one user-wide event', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    repo.add('s2');
    const pubsub = createMemoryPubSub();
    const messages: string[] = [];
    await pubsub.subscribe(REVOCATION_CHANNEL, (message) => messages.push(message));
    const sessions = service(repo, pubsub);
    await sessions.start();
    const heard: RevocationEvent[] = [];
    sessions.onRevoked((event) => heard.push(event));
    const ids = await unitOfWork((uow) => sessions.revokeUserSessions(uow, { userId: USER, reason: 'deactivated' }));
    expect(ids.sort()).toEqual(['s1', 's2']);
    expect(heard).toEqual([{ userId: USER }]);
    expect(messages).toHaveLength(1);
  });

  it('ending the other sessions names each one and spares the current', async () => {
    const repo = fakeRepository();
    repo.add('s1');
    repo.add('s2');
    repo.add('s3');
    const sessions = service(repo);
    await sessions.start();
    const heard: RevocationEvent[] = [];
    sessions.onRevoked((event) => heard.push(event));
    await unitOfWork((uow) => sessions.revokeUserSessions(uow, { userId: USER, reason: 'password_changed', exceptSessionId: 's2' }));
    expect(heard.map((event) => event.sessionId).sort()).toEqual(['s1', 's3']);
    expect((await sessions.resolve('s2'))?.revoked).toBe(false);
  });
});

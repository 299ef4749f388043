import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Db, Tx } from '../../db/client.js';
import { createChainVerifier, GENESIS_HASH } from './audit.chain.js';
import { createAuditMacKeyring } from './audit.mac.js';
import { createAuditFingerprinter } from './audit.privacy.js';
import type { AuditRepository, NewAuditEventRow } from './audit.repository.js';
import { createAuditRecorder, presentEvent } from './audit.service.js';

/** A database of one chain head and a list of rows, with transactions that apply only when they succeed. */
function fakeStore(options: { failWhen?: (rows: NewAuditEventRow[]) => boolean } = {}) {
  const state = { head: { seq: 0, hash: GENESIS_HASH } as { seq: number; hash: string; createdAt?: Date | null }, rows: [] as NewAuditEventRow[], transactions: 0, locks: 0, compareAndSets: 0 };
  const tx = {} as Tx;
  const repository: Pick<AuditRepository, 'lockHead' | 'append' | 'appendIfHead'> = {
    async lockHead() {
      state.locks += 1;
      return { ...state.head };
    },
    async append(_tx, rows, next) {
      if (options.failWhen?.(rows)) throw new Error('insert failed');
      state.rows.push(...rows);
      state.head = { ...next };
      return { xid: String(state.transactions) };
    },
    // Compare-and-set: writes only when the head is where the caller expects it.
    async appendIfHead(_db, rows, expected, next) {
      state.compareAndSets += 1;
      if (state.head.seq !== expected.seq || state.head.hash !== expected.hash) return null;
      if (options.failWhen?.(rows)) throw new Error('insert failed');
      state.rows.push(...rows);
      state.head = { ...next };
      return { xid: String(state.transactions) };
    },
  };
  let queue = Promise.resolve();
  const db = {
    // One transaction at a time, as the head lock makes it.
    transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
      const result = queue.then(async () => {
        state.transactions += 1;
        const snapshot = { head: { ...state.head }, length: state.rows.length };
        try {
          return await work(tx);
        } catch (error) {
          state.head = snapshot.head;
          state.rows.length = snapshot.length;
          throw error;
        }
      });
      queue = result.then(
        () => undefined,
        () => undefined,
      );
      return result;
    },
  } as unknown as Db;
  return { state, db, repository };
}

const fingerprinter = createAuditFingerprinter(randomBytes(32));
const keyring = createAuditMacKeyring(`t1:${randomBytes(32).toString('base64')}`);

describe('audit recorder', () => {
  it('groups concurrent standalone events into few transactions and keeps one valid chain', async () => {
    const { state, db, repository } = fakeStore();
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const rows = await Promise.all(Array.from({ length: 60 }, (_, i) => recorder.recordStandalone({ eventType: 'LOGIN_FAILED', details: { i } })));
    expect(rows.map((row) => row.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(state.transactions).toBeLessThan(10);
    const verifier = createChainVerifier();
    for (const row of [...rows].sort((a, b) => a.seq - b.seq)) expect(verifier.push(presentEvent(row))).toBe(true);
    expect(verifier.finish()).toMatchObject({ valid: true, checked: 60, last_hash: state.head.hash });
  });

  it('writes standalone events recorded in the same synchronous run as one append', async () => {
    const { state, db, repository } = fakeStore();
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const first = recorder.recordStandalone({ eventType: 'PII_REDACTED', details: { total: 1 } });
    const second = recorder.recordStandalone({ eventType: 'LLM_REQUEST', details: { step: 1 } });
    const rows = await Promise.all([first, second]);
    expect(rows.map((row) => [row.seq, row.eventType])).toEqual([
      [1, 'PII_REDACTED'],
      [2, 'LLM_REQUEST'],
    ]);
    expect(state.compareAndSets + state.transactions).toBe(1);
  });

  it('appends at the head it last wrote without a lock, and falls back to the lock when another writer moved it', async () => {
    const { state, db, repository } = fakeStore();
    // Two recorders on one store: two instances of the service.
    const a = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const b = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    await a.recordStandalone({ eventType: 'LOGIN_FAILED' });
    expect(state.locks).toBe(1);
    await a.recordStandalone({ eventType: 'LOGIN_FAILED' });
    await db.transaction((tx) => a.record(tx, { eventType: 'LOGIN_FAILED' }));
    expect(state.locks).toBe(1);
    // b has never written: it locks. Then a's known head is stale: its compare-and-set fails and it locks too.
    await b.recordStandalone({ eventType: 'LOGIN_FAILED' });
    await a.recordStandalone({ eventType: 'LOGIN_FAILED' });
    await db.transaction((tx) => b.record(tx, { eventType: 'LOGIN_FAILED' }));
    expect(state.locks).toBe(4);
    // Having just missed, a goes straight to the lock for a while (no herd of failing compare-and-sets).
    const attempts = state.compareAndSets;
    await a.recordStandalone({ eventType: 'LOGIN_FAILED' });
    expect(state.compareAndSets).toBe(attempts);
    expect(state.locks).toBe(5);
    expect(state.rows.map((row) => row.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const verifier = createChainVerifier();
    for (const row of state.rows) expect(verifier.push(presentEvent(row as Parameters<typeof presentEvent>[0]))).toBe(true);
    expect(verifier.finish()).toMatchObject({ valid: true, checked: 7, last_hash: state.head.hash });
  });

  it('does not trust a head written by a transaction that rolled back', async () => {
    const { state, db, repository } = fakeStore();
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    await recorder.recordStandalone({ eventType: 'LOGIN_FAILED' });
    await expect(
      db.transaction(async (tx) => {
        await recorder.record(tx, { eventType: 'LOGIN_FAILED' });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    await recorder.recordStandalone({ eventType: 'LOGIN_FAILED' });
    expect(state.rows.map((row) => row.seq)).toEqual([1, 2]);
    expect(state.rows[1]!.prevHash).toBe(state.rows[0]!.hash);
  });

  it('lets only the failing event of a group fail', async () => {
    const { state, db, repository } = fakeStore({ failWhen: (rows) => rows.some((row) => (row.details as { poison?: boolean }).poison === true) });
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => recorder.recordStandalone({ eventType: 'LOGIN_FAILED', details: { i, poison: i === 4 } })),
    );
    expect(results.filter((result) => result.status === 'rejected')).toHaveLength(1);
    expect(results[4]!.status).toBe('rejected');
    expect(state.rows).toHaveLength(9);
    expect(state.head.seq).toBe(9);
  });

  it('normalises ids and refuses what the database would store differently', async () => {
    const { db, repository } = fakeStore();
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const row = await recorder.recordStandalone({ eventType: 'USER_UPDATED', userId: 'AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE', details: { password: 'x' } });
    expect(row.userId).toBe('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
    expect(row.details).toEqual({ password: '[REDACTED]' });
    await expect(recorder.recordStandalone({ eventType: 'USER_UPDATED', userId: 'admin' })).rejects.toThrow(/UUID/);
    await expect(recorder.recordStandalone({ eventType: 'NOT_A_TYPE' as 'USER_UPDATED' })).rejects.toThrow(/unknown audit event type/);
  });

  it('offers prompt digests as configured and keyed fingerprints', async () => {
    const { db, repository } = fakeStore();
    const hidden = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false });
    const shown = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: true });
    expect(hidden.promptDigest('hello')).toEqual({ prompt_length: 5, prompt_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(shown.promptDigest('hello')).toEqual({ prompt: 'hello' });
    expect(hidden.fingerprint('v')).toBe(fingerprinter.fingerprint('v'));
  });

  it('never dates an event before the head, unless the head claims to be far in the future', async () => {
    const { state, db, repository } = fakeStore();
    const clock = { now: Date.UTC(2026, 10, 26, 9) };
    const recorder = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false, now: () => new Date(clock.now) });
    // Another instance, its clock 30 s ahead, wrote the head.
    state.head = { seq: 0, hash: GENESIS_HASH, createdAt: new Date(clock.now + 30_000) };
    const first = await recorder.recordStandalone({ eventType: 'LOGIN_FAILED' });
    expect(first.createdAt.getTime()).toBe(clock.now + 30_000);
    expect(keyring.check(first.hash, first.mac)).toBe('valid');
    // A head dated an hour ahead (a forged head) is not followed: the verifier reports the step back instead.
    state.head = { ...state.head, createdAt: new Date(clock.now + 3_600_000) };
    const restarted = createAuditRecorder({ db, repository, keyring, fingerprinter, logPrompts: false, now: () => new Date(clock.now) });
    await db.transaction(async (tx) => {
      const row = await restarted.record(tx, { eventType: 'LOGIN_FAILED' });
      expect(row.createdAt.getTime()).toBe(clock.now);
    });
  });

  it('writes each append to the sinks before its transaction ends, and fails closed when they refuse it', async () => {
    const { state, db, repository } = fakeStore();
    const written: number[][] = [];
    const sinks = {
      configured: true,
      refusing: false,
      async write(events: readonly { seq: number }[]) {
        if (this.refusing) throw new Error('no sink accepted the append');
        written.push(events.map((event) => event.seq));
      },
    };
    const recorder = createAuditRecorder({ db, repository, keyring, sinks, fingerprinter, logPrompts: false });
    await Promise.all([recorder.recordStandalone({ eventType: 'LOGIN_FAILED' }), recorder.recordStandalone({ eventType: 'LOGIN_FAILED' })]);
    expect(written).toEqual([[1, 2]]);
    sinks.refusing = true;
    await expect(recorder.recordStandalone({ eventType: 'LOGIN_FAILED' })).rejects.toThrow(/no sink/);
    await expect(db.transaction((tx) => recorder.record(tx, { eventType: 'LOGIN_FAILED' }))).rejects.toThrow(/no sink/);
    expect(state.rows).toHaveLength(2);
    expect(state.head.seq).toBe(2);
  });
});

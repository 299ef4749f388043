import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DbOrTx } from '../../db/client.js';
import { createMemoryPubSub, type PubSub } from '../../lib/infra/pubsub.js';
import { FANOUT_CHANNEL, createNotificationHub, type NotificationSink, type StreamCloseReason } from './notifications.hub.js';
import { storedNotification, type InsertedNotification, type NotificationRepository, type NotificationTemplate } from './notifications.repository.js';
import type { Notification, NotificationView } from './notifications.types.js';

/** The database, in memory: per-user rows and the global counter, with a hook to hold a read open. */
class FakeStore {
  rows = new Map<string, Notification[]>();
  counter = 0;
  listAfterCalls = 0;
  /** When set, listAfter waits for it (a slow replay query). */
  gate: Promise<void> | undefined;

  /** One committed fan-out: every listed user gets a row with the next seq. */
  fanOut(userIds: string[], overrides: Partial<NotificationTemplate> = {}): { seq: number; rows: InsertedNotification[]; template: NotificationTemplate } {
    this.counter += 1;
    const seq = this.counter;
    const template: NotificationTemplate = {
      type: 'SYSTEM_MAINTENANCE',
      title: `n${seq}`,
      message: 'm',
      data: {},
      priority: 'normal',
      expiresAt: null,
      createdAt: new Date('2026-01-01T00:00:00.000Z'),
      ...overrides,
    };
    const rows = userIds.map((userId) => {
      const row = { id: randomUUID(), userId };
      const list = this.rows.get(userId) ?? [];
      list.push(storedNotification(template, row, seq));
      this.rows.set(userId, list);
      return row;
    });
    return { seq, rows, template };
  }

  insert(userId: string, overrides: Partial<NotificationTemplate> = {}): { seq: number; row: InsertedNotification; template: NotificationTemplate } {
    const { seq, rows, template } = this.fanOut([userId], overrides);
    return { seq, row: rows[0]!, template };
  }

  remove(userId: string, seq: number): void {
    this.rows.set(userId, (this.rows.get(userId) ?? []).filter((row) => row.seq !== seq));
  }

  repository(): Pick<NotificationRepository, 'currentSeq' | 'listAfter'> {
    return {
      currentSeq: async () => this.counter,
      listAfter: async (_db, userId, afterSeq, limit) => {
        this.listAfterCalls += 1;
        const snapshot = (this.rows.get(userId) ?? []).filter((row) => row.seq > afterSeq).slice(0, limit);
        if (this.gate) await this.gate;
        return snapshot;
      },
    };
  }
}

class FakeSink implements NotificationSink {
  received: NotificationView[] = [];
  /** What the stream would write as each notification's data. */
  written: string[] = [];
  closedWith: StreamCloseReason | undefined;
  connectedAt: number | undefined;
  onConnected: (() => void) | undefined;
  connected(): void {
    this.connectedAt = this.received.length;
    this.onConnected?.();
  }
  get closed() {
    return this.closedWith !== undefined;
  }
  send(notification: NotificationView, json?: string): boolean {
    if (this.closed) return false;
    this.received.push(notification);
    this.written.push(json ?? JSON.stringify(notification));
    return true;
  }
  async ready(): Promise<void> {}
  close(reason: StreamCloseReason): void {
    this.closedWith ??= reason;
  }
  seqs(): number[] {
    return this.received.map((view) => view.seq);
  }
}

const db = {} as DbOrTx;
const silent = { warn: () => undefined, error: () => undefined };

function setup(options: { pubsub?: PubSub; store?: FakeStore; pageSize?: number; maxStreams?: number; now?: () => Date; gapWaitMs?: number; resyncIntervalMs?: number } = {}) {
  const store = options.store ?? new FakeStore();
  const pubsub = options.pubsub ?? createMemoryPubSub();
  const hub = createNotificationHub({
    db,
    repository: store.repository(),
    pubsub,
    logger: silent,
    replayPageSize: options.pageSize ?? 100,
    maxStreamsPerUser: options.maxStreams ?? 5,
    now: options.now,
    gapWaitMs: options.gapWaitMs,
    resyncIntervalMs: options.resyncIntervalMs,
  });
  let counter = 0;
  const open = (userId: string, lastSeenSeq?: number, sessionId: string | null = null) => {
    const sink = new FakeSink();
    const handle = hub.attach({ connectionId: `c${++counter}`, userId, sessionId, lastSeenSeq, sink });
    return { sink, handle };
  };
  /** Persist, then announce — what the service does after commit. */
  const notify = async (userId: string, overrides: Partial<NotificationTemplate> = {}) => {
    const { seq, row, template } = store.insert(userId, overrides);
    await hub.announce(seq, [row], template);
    return row;
  };
  return { store, pubsub, hub, open, notify };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('notification hub', () => {
  it('without Last-Event-ID starts live: nothing old is replayed, new ones arrive', async () => {
    const { store, hub, open, notify } = setup();
    const user = randomUUID();
    store.insert(user);
    store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const { sink, handle } = open(user);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([3]);
  });

  it('announces connected before any replay, and delivers whatever is committed once the client has seen it', async () => {
    const { store, hub } = setup();
    const user = randomUUID();
    store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const sink = new FakeSink();
    // The client reacts to `connected` at once: a notification is created right then.
    sink.onConnected = () => {
      const { seq, row, template } = store.insert(user);
      void hub.announce(seq, [row], template);
    };
    const handle = hub.attach({ connectionId: 'c', userId: user, sessionId: null, lastSeenSeq: undefined, sink });
    await handle.started;
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.connectedAt).toBe(0);
    expect(sink.seqs()).toEqual([2]);

    const replaying = new FakeSink();
    await hub.attach({ connectionId: 'd', userId: user, sessionId: null, lastSeenSeq: 0, sink: replaying }).started;
    expect(replaying.connectedAt).toBe(0);
    expect(replaying.seqs()).toEqual([1, 2]);
  });

  it('replays everything after Last-Event-ID in order, then continues live without duplicates', async () => {
    const { store, hub, open, notify } = setup({ pageSize: 2 });
    const user = randomUUID();
    for (let i = 0; i < 5; i += 1) store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const { sink, handle } = open(user, 1);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([2, 3, 4, 5, 6]);
  });

  it('a notification committed while the replay query runs is sent once, in order', async () => {
    const { store, hub, open, notify } = setup();
    const user = randomUUID();
    for (let i = 0; i < 3; i += 1) store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const gate = deferred();
    store.gate = gate.promise;
    const { sink, handle } = open(user, 0);
    // The replay has read seq 1-3 and is held; seq 4 commits and its wake-up arrives meanwhile.
    await new Promise((resolve) => setImmediate(resolve));
    await notify(user);
    expect(sink.seqs()).toEqual([]);
    store.gate = undefined;
    gate.resolve();
    await handle.started;
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.seqs()).toEqual([1, 2, 3, 4]);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a late wake-up for a notification the replay is sending is not sent twice', async () => {
    const { store, hub, pubsub, open } = setup();
    await hub.start();
    const user = randomUUID();
    const inserted = [store.insert(user), store.insert(user), store.insert(user)];
    const gate = deferred();
    store.gate = gate.promise;
    const { sink, handle } = open(user, 2);
    await new Promise((resolve) => setImmediate(resolve));
    // Seq 3's own wake-up arrives while the replay (which read seq 3) is still in flight.
    await hub.announce(inserted[2]!.seq, [inserted[2]!.row], inserted[2]!.template);
    store.gate = undefined;
    gate.resolve();
    await handle.started;
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.seqs()).toEqual([3]);
    await pubsub.publish(FANOUT_CHANNEL, JSON.stringify({ s: 3, r: [[user, inserted[2]!.row.id]] }));
    expect(sink.seqs()).toEqual([3]);
  });

  it('a fan-out is sent without a database read; a missing seq is waited for, then read from the database', async () => {
    const { store, hub, open, notify } = setup({ gapWaitMs: 20 });
    await hub.start();
    const user = randomUUID();
    const other = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    const reads = store.listAfterCalls;
    await notify(user);
    await notify(other);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 3]);
    expect(store.listAfterCalls).toBe(reads);
    // Seq 4 committed but its wake-up was lost; seq 5's wake-up waits for it, then the stream reads the database.
    store.insert(user);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 3]);
    await expect.poll(() => sink.seqs(), { timeout: 2_000, interval: 5 }).toEqual([1, 3, 4, 5]);
    expect(store.listAfterCalls).toBe(reads + 1);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 3, 4, 5, 6]);
    expect(store.listAfterCalls).toBe(reads + 1);
  });

  it('fan-outs heard out of order (two publishers racing) are handed out in seq order, without a database read', async () => {
    const pubsub = createMemoryPubSub();
    const store = new FakeStore();
    const a = setup({ pubsub, store, gapWaitMs: 10_000 });
    const b = setup({ pubsub, store });
    await Promise.all([a.hub.start(), b.hub.start()]);
    const user = randomUUID();
    const { sink, handle } = a.open(user);
    await handle.started;
    const reads = store.listAfterCalls;
    const first = store.insert(user);
    const second = store.insert(user);
    await b.hub.announce(second.seq, [second.row], second.template);
    expect(sink.seqs()).toEqual([]);
    await b.hub.announce(first.seq, [first.row], first.template);
    expect(sink.seqs()).toEqual([1, 2]);
    expect(store.listAfterCalls).toBe(reads);
    await Promise.all([a.hub.close(), b.hub.close()]);
  });

  it('ignores repeated and stale wake-ups', async () => {
    const { hub, pubsub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    const row = await notify(user);
    await pubsub.publish(FANOUT_CHANNEL, JSON.stringify({ s: 1, r: [[user, row.id]], t: sink.received[0] }));
    for (const bad of ['not json', '{"s":"2","r":[]}', '{"s":2}', '{"s":2,"r":[],"p":[3,2]}', 'null']) await pubsub.publish(FANOUT_CHANNEL, bad);
    expect(sink.seqs()).toEqual([1]);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 2]);
  });

  it('moves past a committed notification that was deleted before the stream read it', async () => {
    const { store, hub, pubsub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    const { row } = store.insert(user);
    store.remove(user, 1);
    // No content in the wake-up (too big to carry): the stream reads it, finds it gone, and moves past it.
    await pubsub.publish(FANOUT_CHANNEL, JSON.stringify({ s: 1, r: [[user, row.id]] }));
    await new Promise((resolve) => setImmediate(resolve));
    const reads = store.listAfterCalls;
    await notify(user);
    expect(sink.seqs()).toEqual([2]);
    expect(store.listAfterCalls).toBe(reads);
  });

  it('a Last-Event-ID beyond the newest seq does not mute the stream', async () => {
    const { store, hub, open, notify } = setup();
    const user = randomUUID();
    store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const { sink, handle } = open(user, 999);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([2]);
  });

  it('never streams expired notifications, live or replayed', async () => {
    let clock = new Date('2026-01-01T00:00:00.000Z');
    const { store, hub, open, notify } = setup({ now: () => clock });
    const user = randomUUID();
    store.insert(user, { expiresAt: new Date('2025-12-31T00:00:00.000Z') });
    store.insert(user);
    // History from before this instance started: committed, never announced to it.
    await hub.start();
    const replayed = open(user, 0);
    await replayed.handle.started;
    expect(replayed.sink.seqs()).toEqual([2]);
    await notify(user, { expiresAt: new Date('2026-01-01T00:00:01.000Z') });
    clock = new Date('2026-01-01T00:00:05.000Z');
    await notify(user, { expiresAt: new Date('2026-01-01T00:00:02.000Z') });
    await notify(user);
    expect(replayed.sink.seqs()).toEqual([2, 3, 5]);
  });

  it('a stream only carries its own user’s notifications', async () => {
    const { hub, open, notify } = setup();
    await hub.start();
    const alice = randomUUID();
    const bob = randomUUID();
    const a = open(alice);
    const b = open(bob);
    await Promise.all([a.handle.started, b.handle.started]);
    await notify(alice);
    await notify(alice);
    await notify(bob);
    expect(a.sink.received.map((view) => view.title)).toEqual(['n1', 'n2']);
    expect(b.sink.received.map((view) => view.title)).toEqual(['n3']);
  });

  it('a fan-out is one message, and each stream takes only its own entry', async () => {
    const pubsub = createMemoryPubSub();
    const published: string[] = [];
    const spy: PubSub = {
      ...pubsub,
      publish: async (channel, message) => {
        published.push(channel);
        await pubsub.publish(channel, message);
      },
    };
    const { store, hub, open } = setup({ pubsub: spy });
    await hub.start();
    const users = Array.from({ length: 100 }, () => randomUUID());
    const streams = users.slice(0, 10).map((user) => open(user));
    await Promise.all(streams.map((stream) => stream.handle.started));
    const { seq, rows, template } = store.fanOut(users, { title: 'hello "quoted" \u2028', data: { nested: [1, 'two'] }, expiresAt: new Date('2027-01-01T00:00:00.000Z') });
    const reads = store.listAfterCalls;
    await hub.announce(seq, rows, template);
    expect(published).toEqual([FANOUT_CHANNEL]);
    expect(store.listAfterCalls).toBe(reads);
    streams.forEach((stream, index) => {
      expect(stream.sink.received).toHaveLength(1);
      expect(stream.sink.received[0]).toMatchObject({ id: rows[index]!.id, seq: 1, data: { nested: [1, 'two'] }, is_read: false });
      // Serialised once for all, it is byte for byte what serialising the stream's own view gives.
      expect(stream.sink.written[0]).toBe(JSON.stringify(stream.sink.received[0]));
    });
  });

  it('a fan-out too large for one message goes in parts; the next seq waits until every part is in', async () => {
    const pubsub = createMemoryPubSub();
    const parts: string[] = [];
    const capture: PubSub = { ...pubsub, publish: async (_channel, message) => void parts.push(message) };
    const store = new FakeStore();
    const sender = setup({ pubsub: capture, store });
    const receiver = setup({ pubsub, store, gapWaitMs: 10_000 });
    await Promise.all([sender.hub.start(), receiver.hub.start()]);
    const users = Array.from({ length: 2_500 }, () => randomUUID());
    const first = receiver.open(users[0]!);
    const last = receiver.open(users[2_499]!);
    await Promise.all([first.handle.started, last.handle.started]);
    const big = store.fanOut(users, { title: 'big' });
    await sender.hub.announce(big.seq, big.rows, big.template);
    const next = store.fanOut([users[0]!, users[2_499]!], { title: 'next' });
    await sender.hub.announce(next.seq, next.rows, next.template);
    expect(parts).toHaveLength(4);
    const reads = store.listAfterCalls;
    // The last part of the big fan-out arrives after the next fan-out.
    for (const index of [0, 1, 3, 2]) await pubsub.publish(FANOUT_CHANNEL, parts[index]!);
    expect(first.sink.received.map((view) => view.title)).toEqual(['big', 'next']);
    expect(last.sink.received.map((view) => view.title)).toEqual(['big', 'next']);
    expect(store.listAfterCalls).toBe(reads);
    await Promise.all([sender.hub.close(), receiver.hub.close()]);
  });

  it('closes the oldest stream past the per-user cap', async () => {
    const { hub, open } = setup({ maxStreams: 2 });
    await hub.start();
    const user = randomUUID();
    const first = open(user);
    const second = open(user);
    const third = open(user);
    expect(first.sink.closedWith).toBe('stream_limit');
    expect(second.sink.closed).toBe(false);
    expect(third.sink.closed).toBe(false);
    expect(hub.streamCount()).toBe(2);
  });

  it('revocation ends the streams of that session, or of every session of the user', async () => {
    const { hub, open } = setup();
    await hub.start();
    const user = randomUUID();
    const s1 = open(user, undefined, 'session-1');
    const s2 = open(user, undefined, 'session-2');
    const other = open(randomUUID(), undefined, 'session-1');
    expect(hub.revoke({ userId: user, sessionId: 'session-1' })).toBe(1);
    expect(s1.sink.closedWith).toBe('session_ended');
    expect(s2.sink.closed).toBe(false);
    expect(hub.revoke({ userId: user })).toBe(1);
    expect(s2.sink.closedWith).toBe('session_ended');
    expect(other.sink.closed).toBe(false);
  });

  it('holds no subscription per stream, and releases every stream that detaches', async () => {
    const { hub, pubsub, open } = setup();
    await hub.start();
    const baseline = pubsub.listenerCount();
    for (let round = 0; round < 50; round += 1) {
      const streams = [open(randomUUID()), open(randomUUID())];
      await Promise.all(streams.map((stream) => stream.handle.started));
      expect(pubsub.listenerCount()).toBe(baseline);
      expect(hub.streamCount()).toBe(2);
      for (const stream of streams) stream.handle.detach();
    }
    expect(hub.streamCount()).toBe(0);
    await hub.close();
    expect(pubsub.listenerCount()).toBe(0);
  });

  it('resync recovers wake-ups lost in pub/sub', async () => {
    const { store, hub, open } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    store.insert(user);
    store.insert(user);
    expect(sink.seqs()).toEqual([]);
    await hub.resync();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.seqs()).toEqual([1, 2]);
  });

  it('the periodic resync takes a seq as lost only when it is still missing a full interval later', async () => {
    const { store, hub, open, notify } = setup({ resyncIntervalMs: 25 });
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    const reads = store.listAfterCalls;
    // Committed, and its wake-up is merely slow: it arrives before the next check and is sent without a read.
    const slow = store.insert(user);
    await new Promise((resolve) => setTimeout(resolve, 30));
    await hub.announce(slow.seq, [slow.row], slow.template);
    expect(sink.seqs()).toEqual([1]);
    expect(store.listAfterCalls).toBe(reads);
    // Committed, and its wake-up never comes: a later check catches the stream up.
    store.insert(user);
    await expect.poll(() => sink.seqs(), { timeout: 2_000, interval: 5 }).toEqual([1, 2]);
    await notify(user);
    expect(sink.seqs()).toEqual([1, 2, 3]);
    await hub.close();
  });

  it('a failing read closes the stream so the client reconnects and replays', async () => {
    const store = new FakeStore();
    const hub = createNotificationHub({
      db,
      repository: {
        ...store.repository(),
        listAfter: async () => {
          throw new Error('database down');
        },
      },
      pubsub: createMemoryPubSub(),
      logger: silent,
    });
    await hub.start();
    const user = randomUUID();
    store.insert(user);
    const sink = new FakeSink();
    const handle = hub.attach({ connectionId: 'c', userId: user, sessionId: null, lastSeenSeq: 0, sink });
    await handle.started;
    expect(sink.closedWith).toBe('error');
    expect(hub.streamCount()).toBe(0);
  });
});

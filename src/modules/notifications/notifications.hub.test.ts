import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DbOrTx } from '../../db/client.js';
import { createMemoryPubSub, type PubSub } from '../../lib/infra/pubsub.js';
import { FANOUT_CHANNEL, createNotificationHub, type NotificationSink, type StreamCloseReason } from './notifications.hub.js';
import type { InsertedNotification, NotificationRepository, NotificationTemplate } from './notifications.repository.js';
import type { Notification, NotificationView } from './notifications.types.js';

/** The database, in memory: per-user rows and counters, with a hook to hold a read open. */
class FakeStore {
  rows = new Map<string, Notification[]>();
  counters = new Map<string, number>();
  listAfterCalls = 0;
  /** When set, listAfter waits for it (a slow replay query). */
  gate: Promise<void> | undefined;

  insert(userId: string, overrides: Partial<NotificationTemplate> = {}): { row: InsertedNotification; template: NotificationTemplate } {
    const seq = (this.counters.get(userId) ?? 0) + 1;
    this.counters.set(userId, seq);
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
    const id = randomUUID();
    const list = this.rows.get(userId) ?? [];
    list.push({
      id,
      userId,
      seq,
      type: template.type,
      title: template.title,
      message: template.message,
      data: template.data,
      priority: template.priority,
      isRead: false,
      readAt: null,
      expiresAt: template.expiresAt,
      createdAt: template.createdAt,
    });
    this.rows.set(userId, list);
    return { row: { id, userId, seq }, template };
  }

  remove(userId: string, seq: number): void {
    this.rows.set(userId, (this.rows.get(userId) ?? []).filter((row) => row.seq !== seq));
  }

  repository(): Pick<NotificationRepository, 'currentSeqs' | 'listAfter'> {
    return {
      currentSeqs: async (_db, userIds) => new Map(userIds.map((userId) => [userId, this.counters.get(userId) ?? 0])),
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
  send(notification: NotificationView): boolean {
    if (this.closed) return false;
    this.received.push(notification);
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

function setup(options: { pubsub?: PubSub; pageSize?: number; maxStreams?: number; now?: () => Date } = {}) {
  const store = new FakeStore();
  const pubsub = options.pubsub ?? createMemoryPubSub();
  const hub = createNotificationHub({
    db,
    repository: store.repository(),
    pubsub,
    logger: silent,
    replayPageSize: options.pageSize ?? 100,
    maxStreamsPerUser: options.maxStreams ?? 5,
    now: options.now,
  });
  let counter = 0;
  const open = (userId: string, lastSeenSeq?: number, sessionId: string | null = null) => {
    const sink = new FakeSink();
    const handle = hub.attach({ connectionId: `c${++counter}`, userId, sessionId, lastSeenSeq, sink });
    return { sink, handle };
  };
  /** Persist, then announce — what the service does after commit. */
  const notify = async (userId: string, overrides: Partial<NotificationTemplate> = {}) => {
    const { row, template } = store.insert(userId, overrides);
    await hub.announce([row], template);
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
    await hub.start();
    const user = randomUUID();
    store.insert(user);
    store.insert(user);
    const { sink, handle } = open(user);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([3]);
  });

  it('announces connected before any replay, and delivers whatever is committed once the client has seen it', async () => {
    const { store, hub } = setup();
    await hub.start();
    const user = randomUUID();
    store.insert(user);
    const sink = new FakeSink();
    // The client reacts to `connected` at once: a notification is created right then.
    sink.onConnected = () => {
      const { row, template } = store.insert(user);
      void hub.announce([row], template);
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
    await hub.start();
    const user = randomUUID();
    for (let i = 0; i < 5; i += 1) store.insert(user);
    const { sink, handle } = open(user, 1);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([2, 3, 4, 5, 6]);
  });

  it('a notification committed while the replay query runs is sent once, in order', async () => {
    const { store, hub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    for (let i = 0; i < 3; i += 1) store.insert(user);
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
    await hub.announce([inserted[2]!.row], inserted[2]!.template);
    store.gate = undefined;
    gate.resolve();
    await handle.started;
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.seqs()).toEqual([3]);
    await pubsub.publish(`notifications.user.${user}`, JSON.stringify({ s: 3 }));
    expect(sink.seqs()).toEqual([3]);
  });

  it('the next seq in a wake-up is sent without a database read; a gap is filled from the database', async () => {
    const { store, hub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    const reads = store.listAfterCalls;
    await notify(user);
    await notify(user);
    expect(store.listAfterCalls).toBe(reads);
    // Seq 3 committed but its wake-up was lost; seq 4's wake-up reveals the gap.
    store.insert(user);
    await notify(user);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.seqs()).toEqual([1, 2, 3, 4]);
    expect(store.listAfterCalls).toBe(reads + 1);
  });

  it('ignores repeated and stale wake-ups', async () => {
    const { hub, pubsub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    await notify(user);
    const view = sink.received[0]!;
    await pubsub.publish(`notifications.user.${user}`, JSON.stringify({ s: 1, n: view }));
    await pubsub.publish(`notifications.user.${user}`, 'not json');
    expect(sink.seqs()).toEqual([1]);
  });

  it('moves past a committed notification that was deleted before the stream read it', async () => {
    const { store, hub, pubsub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    const { sink, handle } = open(user);
    await handle.started;
    store.insert(user);
    store.remove(user, 1);
    await pubsub.publish(`notifications.user.${user}`, JSON.stringify({ s: 1 }));
    await new Promise((resolve) => setImmediate(resolve));
    const reads = store.listAfterCalls;
    await notify(user);
    expect(sink.seqs()).toEqual([2]);
    expect(store.listAfterCalls).toBe(reads);
  });

  it('a Last-Event-ID beyond the newest seq does not mute the stream', async () => {
    const { store, hub, open, notify } = setup();
    await hub.start();
    const user = randomUUID();
    store.insert(user);
    const { sink, handle } = open(user, 999);
    await handle.started;
    await notify(user);
    expect(sink.seqs()).toEqual([2]);
  });

  it('never streams expired notifications, live or replayed', async () => {
    let clock = new Date('2026-01-01T00:00:00.000Z');
    const { store, hub, open, notify } = setup({ now: () => clock });
    await hub.start();
    const user = randomUUID();
    store.insert(user, { expiresAt: new Date('2025-12-31T00:00:00.000Z') });
    store.insert(user);
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
    expect(b.sink.received.map((view) => view.title)).toEqual(['n1']);
  });

  it('a large fan-out is one message, and each stream takes only its own entry', async () => {
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
    const inserted = users.map((user) => store.insert(user, { title: 'hello' }));
    const reads = store.listAfterCalls;
    await hub.announce(
      inserted.map(({ row }) => row),
      inserted[0]!.template,
    );
    expect(published).toEqual([FANOUT_CHANNEL]);
    expect(store.listAfterCalls).toBe(reads);
    streams.forEach((stream, index) => {
      expect(stream.sink.received).toHaveLength(1);
      expect(stream.sink.received[0]).toMatchObject({ id: inserted[index]!.row.id, seq: 1, title: 'hello', is_read: false });
    });
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

  it('releases every subscription when streams detach', async () => {
    const { hub, pubsub, open } = setup();
    await hub.start();
    const baseline = pubsub.listenerCount();
    for (let round = 0; round < 50; round += 1) {
      const streams = [open(randomUUID()), open(randomUUID())];
      await Promise.all(streams.map((stream) => stream.handle.started));
      expect(pubsub.listenerCount()).toBe(baseline + 2);
      for (const stream of streams) stream.handle.detach();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(pubsub.listenerCount()).toBe(baseline);
    expect(hub.streamCount()).toBe(0);
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

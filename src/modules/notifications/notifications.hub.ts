import type { DbOrTx } from '../../db/client.js';
import type { PubSub } from '../../lib/infra/pubsub.js';
import type { InsertedNotification, NotificationRepository, NotificationTemplate } from './notifications.repository.js';
import { presentNotification, type NotificationView } from './notifications.types.js';

/**
 * Live delivery. The database is the source of truth; pub/sub only wakes streams up. Each stream remembers the last
 * seq it has dealt with and handles one wake-up at a time, so ordering and de-duplication come from the seqs:
 * - a wake-up carrying exactly the next seq is sent as is (the broadcast fast path: no query per stream);
 * - anything else (a gap, a payload too big to carry, a periodic resync) reads `seq > lastSeq` from the database.
 * Per user, seqs commit in order (the counter row lock), so a stream that has seen seq n can never miss a smaller one.
 */

export type StreamCloseReason = 'stream_limit' | 'session_ended' | 'error' | 'shutdown';

/** The transport side of one stream (an SSE connection). */
export interface NotificationSink {
  readonly closed: boolean;
  /**
   * Called once, when the stream's starting point is fixed (subscribed, the user's seq read) and before any replay:
   * every notification committed after this will reach the stream. The SSE `connected` event goes out here, so a
   * client that has seen it cannot miss a notification created afterwards.
   */
  connected(): void;
  /** Writes one notification; false when the connection is gone (or was just dropped for being too slow). */
  send(notification: NotificationView): boolean;
  /** Resolves when the client has room for more (paces a long replay); at once when closed. */
  ready(): Promise<void>;
  /** Ends the stream, telling the client why. */
  close(reason: StreamCloseReason): void;
}

export interface StreamHandle {
  readonly connectionId: string;
  /** Releases everything the stream holds (idempotent); call when the connection closes. */
  detach(): void;
  /** Settles when the initial replay is done (or failed and closed the stream). */
  readonly started: Promise<void>;
}

export interface AttachOptions {
  connectionId: string;
  userId: string;
  sessionId: string | null;
  /** The client's Last-Event-ID, already validated; undefined = live only. */
  lastSeenSeq: number | undefined;
  sink: NotificationSink;
}

export interface RevocationEvent {
  userId: string;
  sessionId?: string;
}

export interface HubLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface NotificationHubDeps {
  db: DbOrTx;
  repository: Pick<NotificationRepository, 'currentSeqs' | 'listAfter'>;
  pubsub: PubSub;
  logger: HubLogger;
  now?: () => Date;
  /** Concurrent streams per user on this instance; opening one more closes the oldest. */
  maxStreamsPerUser?: number;
  /** Rows per replay query. */
  replayPageSize?: number;
  /**
   * Every so often, compare each local user's counter with what its streams have seen (one query for all of them)
   * and catch up the ones behind: recovers wake-ups lost in pub/sub (Redis down, a subscription not yet active).
   * 0 disables it (in-process pub/sub loses nothing).
   */
  resyncIntervalMs?: number;
}

export const USER_CHANNEL_PREFIX = 'notifications.user.';
export const FANOUT_CHANNEL = 'notifications.fanout';
/** Up to this many recipients, one message per user's own channel; above, one fan-out message per chunk. */
const PER_USER_PUBLISH_LIMIT = 32;
const FANOUT_CHUNK = 1_000;
/** Wake-ups larger than this carry only the seq; the stream reads the notification from the database. */
const MAX_PAYLOAD_CHARS = 16_384;
/** A stream this far behind on wake-ups collapses them into one database catch-up. */
const MAX_QUEUED_WAKEUPS = 64;

type Wake = { kind: 'notification'; view: NotificationView } | { kind: 'committed'; seq: number };

interface UserWakeMessage {
  s: number;
  n?: NotificationView;
}

type FanoutContent = Omit<NotificationView, 'id' | 'seq' | 'is_read' | 'read_at'>;

interface FanoutMessage {
  t?: FanoutContent;
  r: [userId: string, id: string, seq: number][];
}

interface StreamState {
  readonly connectionId: string;
  readonly userId: string;
  readonly sessionId: string | null;
  readonly sink: NotificationSink;
  /** Highest seq dealt with: sent, or known to be expired or deleted. */
  lastSeq: number;
  /** A wake-up or the initial replay is being handled; others wait in `queue`. */
  busy: boolean;
  queue: Wake[];
  detached: boolean;
}

interface UserEntry {
  streams: Set<StreamState>;
  unsubscribe: Promise<() => Promise<void>>;
}

function parseJson(message: string): unknown {
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return undefined;
  }
}

function isExpired(view: NotificationView, now: Date): boolean {
  return view.expires_at !== null && Date.parse(view.expires_at) <= now.getTime();
}

export function fanoutContent(template: NotificationTemplate): FanoutContent {
  return {
    type: template.type,
    title: template.title,
    message: template.message,
    data: template.data,
    priority: template.priority,
    expires_at: template.expiresAt ? template.expiresAt.toISOString() : null,
    created_at: template.createdAt.toISOString(),
  };
}

/** The notification as presentNotification would show it, from the content every recipient shares. */
function viewOf(id: string, seq: number, content: FanoutContent): NotificationView {
  return {
    id,
    seq,
    type: content.type,
    title: content.title,
    message: content.message,
    data: content.data,
    priority: content.priority,
    is_read: false,
    read_at: null,
    expires_at: content.expires_at,
    created_at: content.created_at,
  };
}

export function createNotificationHub(deps: NotificationHubDeps) {
  const { db, repository, pubsub, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const maxStreamsPerUser = deps.maxStreamsPerUser ?? 5;
  const pageSize = deps.replayPageSize ?? 100;
  const users = new Map<string, UserEntry>();
  const shared: Promise<() => Promise<void>>[] = [];
  let resyncTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  function detach(state: StreamState): void {
    if (state.detached) return;
    state.detached = true;
    state.queue = [];
    const entry = users.get(state.userId);
    if (!entry) return;
    entry.streams.delete(state);
    if (entry.streams.size === 0) {
      users.delete(state.userId);
      void entry.unsubscribe.then((off) => off()).catch(() => undefined);
    }
  }

  function fail(state: StreamState, error: unknown): void {
    // The client reconnects with its Last-Event-ID and replays from the database.
    logger.warn({ err: error instanceof Error ? error.message : String(error), user_id: state.userId }, 'notification stream failed');
    state.sink.close('error');
    detach(state);
  }

  /** Handles a wake-up without the database when it can; false when a catch-up query is needed. */
  function tryDirect(state: StreamState, wake: Wake): boolean {
    if (wake.kind === 'committed') return wake.seq <= state.lastSeq;
    const { view } = wake;
    if (view.seq <= state.lastSeq) return true;
    if (view.seq !== state.lastSeq + 1) return false;
    state.lastSeq = view.seq;
    if (!isExpired(view, now())) state.sink.send(view);
    return true;
  }

  /**
   * Sends every stored notification after `lastSeq`, page by page. `committedSeq` is a seq known to be committed:
   * when the read comes back without it, it was deleted, and the stream moves past it.
   */
  async function catchUp(state: StreamState, committedSeq: number | undefined): Promise<void> {
    for (;;) {
      const rows = await repository.listAfter(db, state.userId, state.lastSeq, pageSize);
      if (state.detached || state.sink.closed) return;
      const current = now();
      for (const row of rows) {
        if (row.seq <= state.lastSeq) continue;
        state.lastSeq = row.seq;
        const view = presentNotification(row);
        if (!isExpired(view, current) && !state.sink.send(view)) return;
      }
      if (rows.length < pageSize) break;
      await state.sink.ready();
      if (state.detached || state.sink.closed) return;
    }
    if (committedSeq !== undefined && committedSeq > state.lastSeq) state.lastSeq = committedSeq;
  }

  async function drain(state: StreamState): Promise<void> {
    try {
      while (state.queue.length > 0 && !state.detached && !state.sink.closed) {
        const wake = state.queue.shift()!;
        if (!tryDirect(state, wake)) {
          await catchUp(state, wake.kind === 'committed' ? wake.seq : wake.view.seq);
        }
      }
    } catch (error) {
      fail(state, error);
    } finally {
      state.busy = false;
    }
  }

  function wake(state: StreamState, next: Wake): void {
    if (state.detached || state.sink.closed) return;
    if (!state.busy && tryDirect(state, next)) return;
    if (state.queue.length >= MAX_QUEUED_WAKEUPS) {
      // Far behind: one read from the database replaces the backlog of wake-ups.
      const seqs = state.queue.map((queued) => (queued.kind === 'committed' ? queued.seq : queued.view.seq));
      const nextSeq = next.kind === 'committed' ? next.seq : next.view.seq;
      state.queue = [{ kind: 'committed', seq: Math.max(nextSeq, ...seqs) }];
    } else {
      state.queue.push(next);
    }
    if (!state.busy) {
      state.busy = true;
      void drain(state);
    }
  }

  function wakeUser(userId: string, next: Wake): void {
    const entry = users.get(userId);
    if (!entry) return;
    for (const state of entry.streams) wake(state, next);
  }

  /** A bad message or a failing socket must never throw into the publisher (in-process pub/sub is synchronous). */
  function guarded<T extends unknown[]>(handler: (...args: T) => void): (...args: T) => void {
    return (...args) => {
      try {
        handler(...args);
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'notification wake-up handling failed');
      }
    };
  }

  function onUserMessage(userId: string, message: string): void {
    const parsed = parseJson(message) as Partial<UserWakeMessage> | undefined;
    if (!parsed || typeof parsed.s !== 'number') return;
    // Channels are per user, but a payload for someone else is never sent whatever reaches this channel.
    const view = parsed.n && parsed.n.seq === parsed.s ? parsed.n : undefined;
    wakeUser(userId, view ? { kind: 'notification', view } : { kind: 'committed', seq: parsed.s });
  }

  function onFanoutMessage(message: string): void {
    const parsed = parseJson(message) as Partial<FanoutMessage> | undefined;
    if (!parsed || !Array.isArray(parsed.r)) return;
    const content = parsed.t;
    for (const entry of parsed.r) {
      if (!Array.isArray(entry)) continue;
      const [userId, id, seq] = entry;
      if (!users.has(userId) || typeof seq !== 'number' || typeof id !== 'string') continue;
      if (content) {
        wakeUser(userId, { kind: 'notification', view: viewOf(id, seq, content) });
      } else {
        wakeUser(userId, { kind: 'committed', seq });
      }
    }
  }

  function closeWhere(predicate: (state: StreamState) => boolean, reason: StreamCloseReason): number {
    let closed = 0;
    for (const entry of [...users.values()]) {
      for (const state of [...entry.streams]) {
        if (!predicate(state)) continue;
        state.sink.close(reason);
        detach(state);
        closed += 1;
      }
    }
    return closed;
  }

  function closeRevoked(event: RevocationEvent): number {
    return closeWhere(
      (state) => state.userId === event.userId && (event.sessionId === undefined || state.sessionId === event.sessionId),
      'session_ended',
    );
  }

  async function publish(channel: string, payload: unknown): Promise<void> {
    try {
      await pubsub.publish(channel, JSON.stringify(payload));
    } catch (error) {
      // Local streams were already woken (pub/sub delivers locally first); other instances catch up on resync.
      logger.warn({ err: error instanceof Error ? error.message : String(error), channel: channel.split('.').slice(0, 2).join('.') }, 'notification wake-up not published');
    }
  }

  async function resync(): Promise<void> {
    if (users.size === 0) return;
    const seqs = await repository.currentSeqs(db, [...users.keys()]);
    for (const [userId, seq] of seqs) wakeUser(userId, { kind: 'committed', seq });
  }

  return {
    /** Subscribes to the fan-out channel every instance listens on. */
    async start(): Promise<void> {
      shared.push(pubsub.subscribe(FANOUT_CHANNEL, guarded(onFanoutMessage)));
      await Promise.all(shared);
      const interval = deps.resyncIntervalMs ?? 0;
      if (interval > 0) {
        resyncTimer = setInterval(() => {
          resync().catch((error: unknown) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'notification resync failed'));
        }, interval);
        resyncTimer.unref();
      }
    },

    /**
     * Registers a stream and starts it: subscribe to the user's channel first, then read where the user's seq stands,
     * then replay (when a Last-Event-ID was given). Wake-ups arriving meanwhile wait in the stream's queue, so
     * nothing committed after the read can be missed and nothing is sent twice.
     */
    attach(options: AttachOptions): StreamHandle {
      const state: StreamState = {
        connectionId: options.connectionId,
        userId: options.userId,
        sessionId: options.sessionId,
        sink: options.sink,
        lastSeq: 0,
        busy: true,
        queue: [],
        detached: false,
      };
      let entry = users.get(options.userId);
      if (!entry) {
        const channel = `${USER_CHANNEL_PREFIX}${options.userId}`;
        const userId = options.userId;
        entry = {
          streams: new Set(),
          unsubscribe: pubsub.subscribe(channel, guarded((message: string) => onUserMessage(userId, message))),
        };
        users.set(options.userId, entry);
      }
      entry.streams.add(state);
      // Oldest first (insertion order): the stream over the cap that goes is the one opened longest ago.
      while (entry.streams.size > maxStreamsPerUser) {
        const oldest = entry.streams.values().next().value as StreamState;
        oldest.sink.close('stream_limit');
        detach(oldest);
      }

      const subscribed = entry.unsubscribe;
      const started = (async () => {
        try {
          await subscribed;
          const current = (await repository.currentSeqs(db, [options.userId])).get(options.userId) ?? 0;
          if (state.detached) return;
          // A Last-Event-ID beyond the user's newest seq (another database, a forged value) must not mute the stream.
          state.lastSeq = options.lastSeenSeq === undefined ? current : Math.min(options.lastSeenSeq, current);
          state.sink.connected();
          if (state.lastSeq < current) await catchUp(state, current);
        } catch (error) {
          state.busy = false;
          fail(state, error);
          return;
        }
        void drain(state);
      })();

      return {
        connectionId: options.connectionId,
        started,
        detach: () => detach(state),
      };
    },

    /** Wakes the recipients' streams, on this instance and (through Redis) every other one. Call after commit. */
    async announce(inserted: InsertedNotification[], template: NotificationTemplate): Promise<void> {
      if (inserted.length === 0) return;
      const content = fanoutContent(template);
      const carry = JSON.stringify(content).length <= MAX_PAYLOAD_CHARS;
      if (inserted.length <= PER_USER_PUBLISH_LIMIT) {
        await Promise.all(
          inserted.map((row) => {
            const message: UserWakeMessage = { s: row.seq };
            if (carry) message.n = viewOf(row.id, row.seq, content);
            return publish(`${USER_CHANNEL_PREFIX}${row.userId}`, message);
          }),
        );
        return;
      }
      const messages: FanoutMessage[] = [];
      for (let start = 0; start < inserted.length; start += FANOUT_CHUNK) {
        const message: FanoutMessage = {
          r: inserted.slice(start, start + FANOUT_CHUNK).map((row) => [row.userId, row.id, row.seq]),
        };
        if (carry) message.t = content;
        messages.push(message);
      }
      await Promise.all(messages.map((message) => publish(FANOUT_CHANNEL, message)));
    },

    /**
     * Ends the streams of a logged-out session (or of every session of a deactivated user) held on this instance;
     * identity reports revocations on every instance. Returns how many streams ended.
     */
    revoke(event: RevocationEvent): number {
      return closeRevoked(event);
    },

    /** Catches every local stream up with the database (after Redis comes back, and periodically). */
    resync,

    streamCount(): number {
      let total = 0;
      for (const entry of users.values()) total += entry.streams.size;
      return total;
    },

    async close(): Promise<void> {
      if (stopped) return;
      stopped = true;
      clearInterval(resyncTimer);
      closeWhere(() => true, 'shutdown');
      for (const subscription of shared.splice(0)) {
        await subscription.then((off) => off()).catch(() => undefined);
      }
    },
  };
}

export type NotificationHub = ReturnType<typeof createNotificationHub>;

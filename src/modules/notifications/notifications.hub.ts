import type { DbOrTx } from '../../db/client.js';
import type { PubSub } from '../../lib/infra/pubsub.js';
import type { InsertedNotification, NotificationRepository, NotificationTemplate } from './notifications.repository.js';
import { presentNotification, type NotificationView } from './notifications.types.js';

/**
 * Live delivery. The database is the source of truth; pub/sub only wakes streams up.
 *
 * Seqs come from one global counter (see notification_sequence): a fan-out's recipients share one seq, and fan-outs
 * commit in seq order. Every instance hears about every fan-out on one channel and hands them to its streams in seq
 * order, with no seq skipped. So a stream that has dealt with everything up to seq n and is handed the fan-out with
 * seq m > n has missed nothing of its own in between: it sends the payload as is, with no query per stream.
 * When a seq is missing (a wake-up lost in pub/sub, an instance that crashed between commit and publish), the
 * instance waits briefly for it (publishers race each other through Redis), then moves past it and has every local
 * stream read what it missed from the database. A payload too big to carry is read from the database as well.
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
  /**
   * Writes one notification; false when the connection is gone (or was just dropped for being too slow). `json`,
   * when given, is `notification` already serialised (a fan-out serialises what its recipients share once).
   */
  send(notification: NotificationView, json?: string): boolean;
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
  repository: Pick<NotificationRepository, 'currentSeq' | 'listAfter'>;
  pubsub: PubSub;
  logger: HubLogger;
  now?: () => Date;
  /** Concurrent streams per user on this instance; opening one more closes the oldest. */
  maxStreamsPerUser?: number;
  /** Rows per replay query. */
  replayPageSize?: number;
  /**
   * Every so often, compare the global counter with the seqs this instance has handed out, and catch every local
   * stream up when a seq has stayed missing since the previous check: recovers wake-ups lost in pub/sub that no later
   * wake-up revealed. 0 disables it (in-process pub/sub loses nothing).
   */
  resyncIntervalMs?: number;
  /** How long a missing seq is waited for before the streams read what they missed from the database. */
  gapWaitMs?: number;
}

export const FANOUT_CHANNEL = 'notifications.fanout';
/** Recipients per wake-up message; a larger fan-out is split into parts that share its seq. */
const FANOUT_CHUNK = 1_000;
/** Wake-ups larger than this carry only the seq; the stream reads the notification from the database. */
const MAX_PAYLOAD_CHARS = 16_384;
/** A stream this far behind on wake-ups collapses them into one database catch-up. */
const MAX_QUEUED_WAKEUPS = 64;
const DEFAULT_GAP_WAIT_MS = 200;

type Wake = { kind: 'notification'; view: NotificationView; json?: string } | { kind: 'committed'; seq: number };

type FanoutContent = Omit<NotificationView, 'id' | 'seq' | 'is_read' | 'read_at'>;

/** One wake-up on FANOUT_CHANNEL: a fan-out's seq, its recipients (or one part of them) and, when small, its content. */
interface FanoutMessage {
  s: number;
  /** [index, count] when the fan-out was split into parts. */
  p?: [index: number, count: number];
  t?: FanoutContent;
  r: [userId: string, id: string][];
}

/** A fan-out this instance has heard of but not fully handed out yet. */
interface Arrival {
  count: number;
  seen: Set<number>;
  /** Parts that arrived before their turn; handed out once every earlier seq has been. */
  held: FanoutMessage[];
}

interface StreamState {
  readonly connectionId: string;
  readonly userId: string;
  readonly sessionId: string | null;
  readonly sink: NotificationSink;
  /** Highest seq dealt with: sent, or known to be expired, deleted or someone else's. */
  lastSeq: number;
  /** A wake-up or the initial replay is being handled; others wait in `queue`. */
  busy: boolean;
  queue: Wake[];
  detached: boolean;
}

function parseFanout(message: string): FanoutMessage | undefined {
  let parsed: Partial<FanoutMessage>;
  try {
    parsed = JSON.parse(message) as Partial<FanoutMessage>;
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || !Number.isSafeInteger(parsed.s) || !Array.isArray(parsed.r)) return undefined;
  if (parsed.p !== undefined) {
    const [index, count] = Array.isArray(parsed.p) ? parsed.p : [];
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || index! < 0 || count! < 1 || index! >= count!) return undefined;
  }
  return parsed as FanoutMessage;
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
  const gapWaitMs = deps.gapWaitMs ?? DEFAULT_GAP_WAIT_MS;
  const users = new Map<string, Set<StreamState>>();
  let unsubscribe: (() => Promise<void>) | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  // Every seq up to `handedOut` has been handed to the local streams (or covered by a catch-up); undefined until
  // start() has read the counter, and messages arriving before that wait in `early`.
  let handedOut: number | undefined;
  const early: FanoutMessage[] = [];
  const arrivals = new Map<number, Arrival>();
  let gapTimer: NodeJS.Timeout | undefined;
  /** The counter as read by the previous periodic resync. */
  let previousCounter: number | undefined;

  function detach(state: StreamState): void {
    if (state.detached) return;
    state.detached = true;
    state.queue = [];
    const streams = users.get(state.userId);
    if (!streams) return;
    streams.delete(state);
    if (streams.size === 0) users.delete(state.userId);
  }

  function fail(state: StreamState, error: unknown): void {
    // The client reconnects with its Last-Event-ID and replays from the database.
    logger.warn({ err: error instanceof Error ? error.message : String(error), user_id: state.userId }, 'notification stream failed');
    state.sink.close('error');
    detach(state);
  }

  /**
   * Handles a wake-up without the database when it can; false when a catch-up query is needed. Wake-ups reach a
   * stream in seq order with none skipped (a skip is announced as `committed`), so a notification past `lastSeq` is
   * always the stream's next one.
   */
  function tryDirect(state: StreamState, wake: Wake): boolean {
    if (wake.kind === 'committed') return wake.seq <= state.lastSeq;
    const { view } = wake;
    if (view.seq <= state.lastSeq) return true;
    state.lastSeq = view.seq;
    if (!isExpired(view, now())) state.sink.send(view, wake.json);
    return true;
  }

  /**
   * Sends every stored notification after `lastSeq`, page by page. `committedSeq` is a seq known to be committed,
   * with every smaller one: once the read is done, the stream has dealt with everything up to it.
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

  /** Hands one fan-out message to the local streams of its recipients. */
  function handOut(message: FanoutMessage): void {
    const content = message.t;
    // Recipients differ only in their notification's id: the rest of the JSON is serialised once, in view order.
    let shared: string | undefined;
    for (const entry of message.r) {
      if (!Array.isArray(entry)) continue;
      const [userId, id] = entry;
      const streams = typeof userId === 'string' ? users.get(userId) : undefined;
      if (!streams || typeof id !== 'string') continue;
      let next: Wake;
      if (content) {
        const view = viewOf(id, message.s, content);
        if (shared === undefined) {
          const { id: _id, seq: _seq, ...rest } = view;
          shared = JSON.stringify(rest).slice(1);
        }
        next = { kind: 'notification', view, json: `{"id":${JSON.stringify(id)},"seq":${message.s},${shared}` };
      } else {
        next = { kind: 'committed', seq: message.s };
      }
      for (const state of streams) wake(state, next);
    }
  }

  /** Hands out the fan-outs that are next in line, as far as they have fully arrived. */
  function advance(): void {
    for (;;) {
      const arrival = arrivals.get(handedOut! + 1);
      if (!arrival) break;
      for (const message of arrival.held.splice(0)) handOut(message);
      if (arrival.seen.size < arrival.count) break;
      arrivals.delete(handedOut! + 1);
      handedOut! += 1;
    }
    if (arrivals.size === 0) {
      clearTimeout(gapTimer);
      gapTimer = undefined;
    } else if (!gapTimer) {
      gapTimer = setTimeout(() => {
        gapTimer = undefined;
        skipGap();
      }, gapWaitMs);
      gapTimer.unref();
    }
  }

  /**
   * Moves past seqs that did not arrive: every local stream reads what it missed, up to `seq` (committed, with every
   * smaller seq), from the database; fan-outs after it carry on as usual.
   */
  function skipTo(seq: number): void {
    if (handedOut === undefined || seq <= handedOut) return;
    handedOut = seq;
    for (const pending of [...arrivals.keys()]) if (pending <= seq) arrivals.delete(pending);
    for (const streams of users.values()) for (const state of streams) wake(state, { kind: 'committed', seq });
    advance();
  }

  function skipGap(): void {
    if (arrivals.size === 0 || handedOut === undefined) return;
    // The fan-out after the gap has arrived, so it and everything before it are committed.
    const beyond = Math.max(...arrivals.keys());
    logger.warn({ from_seq: handedOut + 1, to_seq: beyond }, 'notification wake-ups missing; local streams catch up from the database');
    skipTo(beyond);
  }

  function receive(message: FanoutMessage): void {
    if (handedOut === undefined) {
      early.push(message);
      return;
    }
    if (message.s <= handedOut) return;
    const [index, count] = message.p ?? [0, 1];
    let arrival = arrivals.get(message.s);
    if (!arrival) {
      arrival = { count, seen: new Set(), held: [] };
      arrivals.set(message.s, arrival);
    }
    if (arrival.seen.has(index)) return;
    arrival.seen.add(index);
    arrival.held.push(message);
    advance();
  }

  // The message this instance is publishing right now: pub/sub hands it to the local subscriber synchronously, as the
  // very string published, so that delivery skips parsing what was serialised a moment ago.
  let publishing: { raw: string; message: FanoutMessage } | undefined;

  function onFanoutMessage(raw: string): void {
    const message = publishing !== undefined && raw === publishing.raw ? publishing.message : parseFanout(raw);
    if (message) receive(message);
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

  function closeWhere(predicate: (state: StreamState) => boolean, reason: StreamCloseReason): number {
    let closed = 0;
    for (const streams of [...users.values()]) {
      for (const state of [...streams]) {
        if (!predicate(state)) continue;
        state.sink.close(reason);
        detach(state);
        closed += 1;
      }
    }
    return closed;
  }

  async function publish(payload: FanoutMessage): Promise<void> {
    try {
      const raw = JSON.stringify(payload);
      let sent: Promise<void>;
      publishing = { raw, message: payload };
      try {
        sent = pubsub.publish(FANOUT_CHANNEL, raw);
      } finally {
        publishing = undefined;
      }
      await sent;
    } catch (error) {
      // Local streams were already woken (pub/sub delivers locally first); other instances catch up on resync.
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'notification wake-up not published');
    }
  }

  /** Catches the local streams up with every committed seq (after Redis comes back: what it lost is gone). */
  async function resync(): Promise<void> {
    skipTo(await repository.currentSeq(db));
  }

  /**
   * The periodic check: a seq that was committed at the previous check and has still not been handed out is taken
   * as lost. The one-interval grace keeps wake-ups still in flight from causing a catch-up for nothing.
   */
  async function periodicResync(): Promise<void> {
    const counter = await repository.currentSeq(db);
    if (previousCounter !== undefined) skipTo(previousCounter);
    previousCounter = counter;
  }

  return {
    /** Subscribes to the fan-out channel, then reads where the counter stands: every seq after it will be heard of. */
    async start(): Promise<void> {
      unsubscribe = await pubsub.subscribe(FANOUT_CHANNEL, guarded(onFanoutMessage));
      handedOut = await repository.currentSeq(db);
      for (const message of early.splice(0)) receive(message);
      const interval = deps.resyncIntervalMs ?? 0;
      if (interval > 0) {
        resyncTimer = setInterval(() => {
          periodicResync().catch((error: unknown) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'notification resync failed'));
        }, interval);
        resyncTimer.unref();
      }
    },

    /**
     * Registers a stream and starts it: registered first (so it is handed every fan-out from now on), then reads where
     * the counter stands, then replays (when a Last-Event-ID was given). Wake-ups arriving meanwhile wait in the
     * stream's queue, so nothing committed after the read can be missed and nothing is sent twice.
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
      let streams = users.get(options.userId);
      if (!streams) {
        streams = new Set();
        users.set(options.userId, streams);
      }
      streams.add(state);
      // Oldest first (insertion order): the stream over the cap that goes is the one opened longest ago.
      while (streams.size > maxStreamsPerUser) {
        const oldest = streams.values().next().value as StreamState;
        oldest.sink.close('stream_limit');
        detach(oldest);
      }

      const started = (async () => {
        try {
          const current = await repository.currentSeq(db);
          if (state.detached) return;
          // A Last-Event-ID beyond the newest seq (another database, a forged value) must not mute the stream.
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

    /**
     * Wakes the recipients' streams, on this instance and (through Redis) every other one. Call after the fan-out
     * with this seq has committed.
     */
    async announce(seq: number, inserted: InsertedNotification[], template: NotificationTemplate): Promise<void> {
      if (inserted.length === 0) return;
      const content = fanoutContent(template);
      const carry = JSON.stringify(content).length <= MAX_PAYLOAD_CHARS;
      const parts = Math.ceil(inserted.length / FANOUT_CHUNK);
      const messages: FanoutMessage[] = [];
      for (let index = 0; index < parts; index += 1) {
        const message: FanoutMessage = {
          s: seq,
          r: inserted.slice(index * FANOUT_CHUNK, (index + 1) * FANOUT_CHUNK).map((row) => [row.userId, row.id]),
        };
        if (parts > 1) message.p = [index, parts];
        if (carry) message.t = content;
        messages.push(message);
      }
      await Promise.all(messages.map(publish));
    },

    /**
     * Ends the streams of a logged-out session (or of every session of a deactivated user) held on this instance;
     * identity reports revocations on every instance. Returns how many streams ended.
     */
    revoke(event: RevocationEvent): number {
      return closeWhere(
        (state) => state.userId === event.userId && (event.sessionId === undefined || state.sessionId === event.sessionId),
        'session_ended',
      );
    },

    /** Catches every local stream up with the database (after Redis comes back). */
    resync,

    streamCount(): number {
      let total = 0;
      for (const streams of users.values()) total += streams.size;
      return total;
    },

    async close(): Promise<void> {
      if (stopped) return;
      stopped = true;
      clearInterval(resyncTimer);
      clearTimeout(gapTimer);
      closeWhere(() => true, 'shutdown');
      await unsubscribe?.().catch(() => undefined);
    },
  };
}

export type NotificationHub = ReturnType<typeof createNotificationHub>;

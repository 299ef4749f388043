import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

export type MessageHandler = (message: string) => void;

/**
 * Fan-out between instances. Only a wake-up signal: the database stays the source of truth, so a message lost while
 * Redis is down is recovered by the subscriber's next catch-up.
 */
export interface PubSub {
  publish(channel: string, message: string): Promise<void>;
  /** Returns the function that removes this handler. */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;
  listenerCount(): number;
  close(): Promise<void>;
}

export function createMemoryPubSub(): PubSub {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    async publish(channel, message) {
      emitter.emit(channel, message);
    },
    async subscribe(channel, handler) {
      emitter.on(channel, handler);
      return async () => {
        emitter.off(channel, handler);
      };
    },
    listenerCount() {
      return emitter.eventNames().reduce((sum, name) => sum + emitter.listenerCount(name), 0);
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

/**
 * One subscriber connection per process, shared by every local listener, so 5,000 SSE streams cost one Redis
 * subscription per channel, not 5,000 connections. The subscriber (createRedisSubscriber) does not re-subscribe by
 * itself; every 'ready' re-subscribes the channels with listeners here, with the failure handled.
 */
export function createRedisPubSub(publisher: Redis, subscriber: Redis, prefix: string): PubSub {
  const local = createMemoryPubSub();
  const counts = new Map<string, number>();
  // Local listeners are served directly (so they keep working while Redis is down); our own echo is skipped.
  const origin = randomUUID();
  const full = (channel: string) => `${prefix}:ps:${channel}`;
  subscriber.on('message', (channel: string, raw: string) => {
    const separator = raw.indexOf('|');
    if (separator < 0 || raw.slice(0, separator) === origin) return;
    void local.publish(channel.slice(prefix.length + 4), raw.slice(separator + 1));
  });
  subscriber.on('ready', () => {
    const channels = [...counts.keys()].map(full);
    if (channels.length > 0) void subscriber.subscribe(...channels).catch(() => undefined);
  });
  return {
    async publish(channel, message) {
      await local.publish(channel, message);
      await publisher.publish(full(channel), `${origin}|${message}`);
    },
    async subscribe(channel, handler) {
      const off = await local.subscribe(channel, handler);
      const count = (counts.get(channel) ?? 0) + 1;
      counts.set(channel, count);
      if (count === 1) {
        // While Redis is up, wait (bounded) for the subscription to be confirmed, so a message published right after
        // subscribe() returns is not missed; while it is down, ioredis queues it and completes it on reconnect.
        const confirmed = subscriber.subscribe(full(channel)).catch(() => undefined);
        if (subscriber.status === 'ready') {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([confirmed, new Promise((resolve) => (timer = setTimeout(resolve, 1_000)))]);
          clearTimeout(timer);
        }
      }
      let removed = false;
      return async () => {
        if (removed) return;
        removed = true;
        await off();
        const left = (counts.get(channel) ?? 1) - 1;
        if (left <= 0) {
          counts.delete(channel);
          void subscriber.unsubscribe(full(channel)).catch(() => undefined);
        } else {
          counts.set(channel, left);
        }
      };
    },
    listenerCount() {
      return local.listenerCount();
    },
    async close() {
      await local.close();
      counts.clear();
    },
  };
}

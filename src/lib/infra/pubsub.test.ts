import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryPubSub, createRedisPubSub, type PubSub } from './pubsub.js';
import { createRedis, createRedisSubscriber, waitForRedis } from './redis.js';
import type { Redis } from 'ioredis';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function redisPubSub(prefix: string): Promise<PubSub> {
  const publisher = createRedis(process.env.REDIS_URL!);
  const subscriber = createRedisSubscriber(process.env.REDIS_URL!);
  await waitForRedis(publisher, 5_000);
  const pubsub = createRedisPubSub(publisher, subscriber, prefix);
  cleanups.push(async () => {
    await pubsub.close();
    for (const client of [publisher, subscriber] as Redis[]) client.disconnect();
  });
  return pubsub;
}

function nextMessage(pubsub: PubSub, channel: string): Promise<string> {
  return new Promise((resolve) => {
    void pubsub.subscribe(channel, (message) => resolve(message));
  });
}

describe('memory pub/sub', () => {
  it('delivers to subscribers of the channel only, and unsubscribes cleanly', async () => {
    const pubsub = createMemoryPubSub();
    const a: string[] = [];
    const b: string[] = [];
    const offA = await pubsub.subscribe('a', (m) => a.push(m));
    await pubsub.subscribe('b', (m) => b.push(m));
    await pubsub.publish('a', 'one');
    expect(a).toEqual(['one']);
    expect(b).toEqual([]);
    await offA();
    await pubsub.publish('a', 'two');
    expect(a).toEqual(['one']);
    expect(pubsub.listenerCount()).toBe(1);
  });
});

describe.runIf(Boolean(process.env.REDIS_URL))('redis pub/sub', () => {
  it('carries a message from one instance to another, and locally exactly once', async () => {
    const prefix = `cdsa-test-${randomUUID().slice(0, 8)}`;
    const first = await redisPubSub(prefix);
    const second = await redisPubSub(prefix);
    const localSeen: string[] = [];
    await first.subscribe('chan', (m) => localSeen.push(m));
    const remote = nextMessage(second, 'chan');
    // Give the subscription a moment to reach Redis (it is asynchronous by design).
    await new Promise((resolve) => setTimeout(resolve, 100));
    await first.publish('chan', 'hello');
    expect(await remote).toBe('hello');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(localSeen).toEqual(['hello']);
  });

  it('keeps one Redis subscription per channel however many local listeners', async () => {
    const pubsub = await redisPubSub(`cdsa-test-${randomUUID().slice(0, 8)}`);
    const offs = await Promise.all(Array.from({ length: 50 }, () => pubsub.subscribe('many', () => undefined)));
    expect(pubsub.listenerCount()).toBe(50);
    for (const off of offs) await off();
    expect(pubsub.listenerCount()).toBe(0);
  });

  it('re-subscribes after the subscriber reconnects, and a shutdown in the middle leaves no unhandled rejection', async () => {
    const prefix = `cdsa-test-${randomUUID().slice(0, 8)}`;
    const sender = await redisPubSub(prefix);
    const publisher = createRedis(process.env.REDIS_URL!);
    const subscriber = createRedisSubscriber(process.env.REDIS_URL!);
    cleanups.push(async () => {
      for (const client of [publisher, subscriber]) client.disconnect();
    });
    await waitForRedis(publisher, 5_000);
    const receiver = createRedisPubSub(publisher, subscriber, prefix);
    const seen: string[] = [];
    await receiver.subscribe('again', (m) => seen.push(m));
    const ready = new Promise((resolve) => subscriber.once('ready', resolve));
    subscriber.disconnect(true);
    await ready;
    await eventuallyDelivered(sender, 'again', 'after-reconnect', seen);

    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // Reconnect and close again at once: the re-subscribe is in flight when the connection ends.
      subscriber.disconnect(true);
      await new Promise((resolve) => subscriber.once('ready', resolve));
      subscriber.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});

/** Publishes until the listener sees the message: the re-subscribe reaches Redis asynchronously. */
async function eventuallyDelivered(sender: PubSub, channel: string, message: string, seen: string[]): Promise<void> {
  for (let attempt = 0; attempt < 50 && !seen.includes(message); attempt++) {
    await sender.publish(channel, message);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(seen).toContain(message);
}

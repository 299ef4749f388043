import { describe, expect, it } from 'vitest';
import { createMemoryKeyValueStore } from '../../lib/infra/kv.js';
import { createLoginThrottle, LoginThrottledError } from './login-throttle.js';

function setup() {
  let now = 1_000_000;
  const kv = createMemoryKeyValueStore(() => now);
  const throttle = createLoginThrottle({ kv, maxAccountFailures: 3, maxClientFailures: 5 });
  return { throttle, advance: (ms: number) => (now += ms) };
}

describe('login throttle', () => {
  it('refuses the attempt after the maximum failures, with the seconds left in the window', async () => {
    const { throttle, advance } = setup();
    for (let i = 0; i < 3; i += 1) await throttle.beginAccountAttempt('user:a');
    advance(60_000);
    const refused = await throttle.beginAccountAttempt('user:a').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LoginThrottledError);
    expect((refused as LoginThrottledError).scope).toBe('account');
    expect((refused as LoginThrottledError).retryAfterSeconds).toBe(840);
    await expect(throttle.beginAccountAttempt('user:b')).resolves.toBeUndefined();
    advance(840_000);
    await expect(throttle.beginAccountAttempt('user:a')).resolves.toBeUndefined();
  });

  it('a success clears the account count', async () => {
    const { throttle } = setup();
    for (let i = 0; i < 3; i += 1) await throttle.beginAccountAttempt('user:a');
    await throttle.recordSuccess('user:a');
    await expect(throttle.beginAccountAttempt('user:a')).resolves.toBeUndefined();
  });

  it('counts client attempts across accounts; a success gives its attempt back', async () => {
    const { throttle } = setup();
    await throttle.beginClientAttempt('10.0.0.1');
    await throttle.clientSucceeded('10.0.0.1');
    for (let i = 0; i < 5; i += 1) await throttle.beginClientAttempt('10.0.0.1');
    await expect(throttle.beginClientAttempt('10.0.0.1')).rejects.toMatchObject({ scope: 'client', status: 429 });
    await expect(throttle.beginClientAttempt('10.0.0.2')).resolves.toBeUndefined();
  });

  it('lets no more concurrent client attempts through than the limit', async () => {
    const { throttle } = setup();
    const outcomes = await Promise.allSettled(Array.from({ length: 12 }, () => throttle.beginClientAttempt('10.0.0.3')));
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(5);
  });
});

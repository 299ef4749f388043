import { RateLimitedError } from '../../lib/errors.js';
import type { KeyValueStore } from '../../lib/infra/kv.js';
import { sha256Hex } from '../../lib/crypto/hmac.js';

export const LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60;

export interface LoginThrottleOptions {
  kv: KeyValueStore;
  maxAccountFailures: number;
  maxClientFailures: number;
  windowSeconds?: number;
}

export type ThrottleScope = 'account' | 'client';

export class LoginThrottledError extends RateLimitedError {
  constructor(
    readonly scope: ThrottleScope,
    retryAfterSeconds: number,
  ) {
    super('Too many failed login attempts; try again later', retryAfterSeconds);
  }
}

/**
 * Failed-login throttling in the shared key-value store (Redis when configured, so every instance counts together).
 * An account is keyed by the user id when it exists and by the identifier otherwise, so unknown and known accounts
 * lock out alike and the 429 reveals nothing. A client is keyed by its address.
 */
export function createLoginThrottle(options: LoginThrottleOptions) {
  const { kv } = options;
  const windowSeconds = options.windowSeconds ?? LOGIN_FAILURE_WINDOW_SECONDS;
  const accountKey = (account: string) => `identity:login-failures:account:${sha256Hex(account)}`;
  const clientKey = (client: string) => `identity:login-failures:client:${client}`;

  return {
    /**
     * Before any password check, the client's attempt is counted (atomic increment), so concurrent guesses cannot
     * all pass a count read before any of them failed; a success gives the attempt back (`clientSucceeded`), so what
     * accumulates are the failures. `null` (no address known) is not counted.
     */
    async beginClientAttempt(client: string | null): Promise<void> {
      if (!client) return;
      const { count, ttlSeconds } = await kv.increment(clientKey(client), windowSeconds);
      if (count > options.maxClientFailures) throw new LoginThrottledError('client', ttlSeconds);
    },
    async clientSucceeded(client: string | null): Promise<void> {
      if (client) await kv.decrement(clientKey(client));
    },
    /**
     * Counts the attempt before the password is checked (atomic increment), so concurrent guesses cannot slip past
     * the limit; a success clears the count, so what accumulates are the failures.
     */
    async beginAccountAttempt(account: string): Promise<void> {
      const { count, ttlSeconds } = await kv.increment(accountKey(account), windowSeconds);
      if (count > options.maxAccountFailures) throw new LoginThrottledError('account', ttlSeconds);
    },
    /** A successful login clears the account's failures (not the client's: one good password must not buy more guesses elsewhere). */
    async recordSuccess(account: string): Promise<void> {
      await kv.del(accountKey(account));
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConflictError, ForbiddenError } from '../../lib/errors.js';
import type { RequestContext } from './permissions.js';
import type { UserView } from '../users/users.schemas.js';
import type { UsersService } from '../users/users.service.js';

export interface FirstRunSetupDeps {
  users: Pick<UsersService, 'createUser'>;
  /** Whether an active administrator exists (then there is nothing to set up). */
  hasAdmin(): Promise<boolean>;
}

const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest();

/**
 * The first administrator of an installation without CDSA_ADMIN_*: the server prints a one-time token at start-up
 * (as Grafana or Jenkins do) and `POST /auth/setup` with it creates one ADMIN. The token lives only in this process's
 * memory (a restart prints a new one), is spent by the first administrator created with it, and is refused as soon
 * as any administrator exists, however created (CLI, CDSA_ADMIN_*).
 */
export function createFirstRunSetup(deps: FirstRunSetupDeps) {
  let tokenHash: Buffer | undefined;
  let inProgress = false;

  return {
    /** A new token when no administrator exists yet; undefined otherwise. */
    async issueToken(): Promise<string | undefined> {
      if (await deps.hasAdmin()) return undefined;
      const token = randomBytes(24).toString('base64url');
      tokenHash = digest(token);
      return token;
    },

    async createFirstAdmin(
      token: string,
      input: { username: string; email: string; password: string; fullName?: string },
      context: RequestContext,
    ): Promise<UserView> {
      if (!tokenHash || !timingSafeEqual(digest(token), tokenHash)) {
        throw new ForbiddenError('Invalid setup token; use the one this server printed at start-up, or `cdsa users create`');
      }
      if (inProgress) throw new ConflictError('The first administrator is being created');
      inProgress = true;
      try {
        if (await deps.hasAdmin()) {
          tokenHash = undefined;
          throw new ConflictError('An administrator already exists; sign in instead');
        }
        const user = await deps.users.createUser(null, { ...input, fullName: input.fullName ?? null, role: 'ADMIN' }, { origin: 'bootstrap', context });
        tokenHash = undefined;
        return user;
      } finally {
        inProgress = false;
      }
    },
  };
}

export type FirstRunSetup = ReturnType<typeof createFirstRunSetup>;

import type { Db } from '../../db/client.js';
import { inUnitOfWork, withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, type FieldError } from '../../lib/errors.js';
import { decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, SYSTEM_CONTEXT, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import { checkPasswordPolicy, hashPassword, verifyPassword } from '../auth/passwords.js';
import type { SessionService } from '../auth/sessions.service.js';
import { effectiveClearance, type Label } from '../../lib/labels.js';
import type { UserRow, UsersRepository } from './users.repository.js';
import { presentUser, type UserView } from './users.schemas.js';

export interface CreateUserInput {
  username: string;
  email: string;
  password: string;
  fullName?: string | null;
  role: Role;
}

export interface UpdateUserInput {
  role?: Role;
  isActive?: boolean;
  clearance?: Label;
}

export interface UpdateProfileInput {
  fullName?: string | null;
  email?: string;
  currentPassword?: string;
  newPassword?: string;
}

export interface UsersServiceDeps {
  db: Db;
  repository: UsersRepository;
  audit: Pick<AuditRecorder, 'record'>;
  sessions: Pick<SessionService, 'revokeUserSessions' | 'userChanged'>;
  /** Current-password checks count toward the account's login throttle: a stolen token must not guess freely. */
  passwordAttempts?: { begin(userId: string): Promise<void>; succeeded(userId: string): Promise<void> };
  logger?: { warn(obj: object, msg: string): void };
}

/** How a user came to exist, for the audit trail. */
export type UserOrigin = 'registration' | 'admin' | 'cli' | 'bootstrap';

function requireUsersManage(actor: Actor): void {
  // The route declares it too; the service checks again so no other caller can skip it.
  if (!hasPermission(actor.role, 'users:manage')) throw new ForbiddenError('This action needs the users:manage permission');
}

function assertPassword(password: string, context: { username: string; email: string }, pointer: string): void {
  const errors = checkPasswordPolicy(password, context, pointer);
  if (errors.length > 0) throw new ValidationError('The password does not meet the password rules', errors);
}

/** User administration and profiles. Every change is audited in its transaction; revocations are announced after it. */
export function createUsersService(deps: UsersServiceDeps) {
  const { db, repository, audit, sessions } = deps;

  async function createUser(
    actor: Actor | null,
    input: CreateUserInput,
    options: { origin: UserOrigin; context?: RequestContext; uow?: UnitOfWork },
  ): Promise<UserView> {
    if (options.origin === 'admin') {
      if (!actor) throw new ForbiddenError();
      requireUsersManage(actor);
    }
    const email = input.email.toLowerCase();
    assertPassword(input.password, { username: input.username, email }, '/password');
    const passwordHash = await hashPassword(input.password);
    return inUnitOfWork(
      db,
      options.uow,
      async (uow) => {
        const row = await repository.insert(uow.tx, {
          username: input.username,
          email,
          fullName: input.fullName ?? null,
          passwordHash,
          role: input.role,
        });
        if (!row) throw new ConflictError('A user with this username or e-mail address already exists');
        await audit.record(uow.tx, {
          eventType: options.origin === 'registration' ? 'USER_REGISTERED' : 'USER_CREATED',
          userId: actor?.userId ?? row.id,
          sessionId: actor?.sessionId ?? null,
          resourceType: 'user',
          resourceId: row.id,
          details: { username: row.username, role: row.role, origin: options.origin },
          context: options.context ?? SYSTEM_CONTEXT,
        });
        return presentUser(row);
      },
      deps.logger,
    );
  }

  async function findForAdmin(actor: Actor, id: string): Promise<UserRow> {
    requireUsersManage(actor);
    const row = await repository.findById(db, id);
    if (!row) throw new NotFoundError('User');
    return row;
  }

  return {
    createUser,

    /**
     * The administrator from CDSA_ADMIN_*: created when no user has that username, never overwritten (a changed
     * password in the environment does not reset a live account). Returns whether it was created.
     */
    async ensureBootstrapAdmin(admin: { username: string; email: string; password: string }): Promise<boolean> {
      if (await repository.findByUsername(db, admin.username)) return false;
      try {
        await createUser(null, { ...admin, role: 'ADMIN' }, { origin: 'bootstrap' });
        return true;
      } catch (error) {
        // Another instance starting at the same moment created it first.
        if (error instanceof ConflictError && (await repository.findByUsername(db, admin.username))) return false;
        throw error;
      }
    },

    async list(
      actor: Actor,
      query: { role?: Role; isActive?: boolean; search?: string; limit: number; cursor?: string },
    ): Promise<Page<UserView>> {
      requireUsersManage(actor);
      const cursor = decodeCursor(query.cursor, { c: 'timestamp', i: 'uuid' });
      const after = cursor ? { createdAt: new Date(cursor.c), id: cursor.i } : undefined;
      const rows = await repository.list(db, {
        role: query.role,
        isActive: query.isActive,
        search: query.search,
        after,
        limit: query.limit,
      });
      return toPage(rows, query.limit, (row) => ({ c: row.createdAt.toISOString(), i: row.id }), presentUser);
    },

    async get(actor: Actor, id: string): Promise<UserView> {
      return presentUser(await findForAdmin(actor, id));
    },

    /** The caller's own account. */
    async me(actor: Actor): Promise<UserView> {
      const row = await repository.findById(db, actor.userId);
      if (!row) throw new NotFoundError('User');
      return presentUser(row);
    },

    /**
     * Role, clearance and active status. Deactivation ends every session at once; a role or clearance change applies
     * to the user's live tokens at once on every instance (authorization reads the current user through the session
     * cache, which `userChanged` invalidates everywhere after the commit). Admins cannot demote or deactivate
     * themselves, and changes that take an administrator away lock the administrators' rows, so even concurrent ones
     * always leave one active administrator.
     */
    async update(actor: Actor, id: string, input: UpdateUserInput, context: RequestContext): Promise<UserView> {
      const current = await findForAdmin(actor, id);
      const ownClearanceChange = input.clearance !== undefined && input.clearance !== effectiveClearance(current);
      if (id === actor.userId && ((input.role !== undefined && input.role !== current.role) || input.isActive === false || ownClearanceChange)) {
        // Nobody raises their own clearance: another administrator grants it.
        throw new ConflictError('You cannot change your own role or clearance, or deactivate your own account');
      }
      const patch: UpdateUserInput = {};
      if (input.role !== undefined && input.role !== current.role) patch.role = input.role;
      if (input.isActive !== undefined && input.isActive !== current.isActive) patch.isActive = input.isActive;
      // Stored explicitly once set, so a later role change does not move it (a role never raises a clearance).
      if (input.clearance !== undefined && (input.clearance !== effectiveClearance(current) || current.clearance === null)) patch.clearance = input.clearance;
      if (Object.keys(patch).length === 0) return presentUser(current);
      const takesAnAdminAway = current.role === 'ADMIN' && current.isActive && ((patch.role !== undefined && patch.role !== 'ADMIN') || patch.isActive === false);
      return withTransaction(
        db,
        async (uow) => {
          if (takesAnAdminAway) {
            // Two admins demoting each other at once would each pass the check above and leave nobody: with the
            // admins' rows locked, the later change sees the earlier one and is refused if its author lost the role.
            const admins = await repository.lockActiveAdmins(uow.tx);
            if (!admins.includes(actor.userId)) throw new ForbiddenError('This action needs the users:manage permission');
            if (admins.filter((adminId) => adminId !== id).length === 0) throw new ConflictError('The last active administrator cannot be demoted or deactivated');
          }
          const row = await repository.update(uow.tx, id, patch);
          if (!row) throw new NotFoundError('User');
          const changes: Record<string, { from: unknown; to: unknown }> = {};
          if (patch.role !== undefined) changes.role = { from: current.role, to: patch.role };
          if (patch.isActive !== undefined) changes.is_active = { from: current.isActive, to: patch.isActive };
          if (patch.clearance !== undefined) changes.clearance = { from: effectiveClearance(current), to: patch.clearance };
          let sessionsRevoked = 0;
          if (patch.isActive === false) {
            sessionsRevoked = (await sessions.revokeUserSessions(uow, { userId: id, reason: 'deactivated' })).length;
          } else {
            sessions.userChanged(uow, id);
          }
          await audit.record(uow.tx, {
            eventType: 'USER_UPDATED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'user',
            resourceId: id,
            details: { username: row.username, changes, sessions_revoked: sessionsRevoked },
            context,
          });
          return presentUser(row);
        },
        deps.logger,
      );
    },

    /** Ends every session of a user (e.g. a lost laptop); their tokens stop working at once. */
    async revokeSessions(actor: Actor, id: string, context: RequestContext): Promise<number> {
      const target = await findForAdmin(actor, id);
      return withTransaction(
        db,
        async (uow) => {
          const ids = await sessions.revokeUserSessions(uow, { userId: id, reason: 'admin_revoked' });
          await audit.record(uow.tx, {
            eventType: 'SESSIONS_REVOKED',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'user',
            resourceId: id,
            details: { username: target.username, sessions_revoked: ids.length, reason: 'admin_revoked' },
            context,
          });
          return ids.length;
        },
        deps.logger,
      );
    },

    /** PUT /auth/me: profile fields; a password change needs the current password and ends the other sessions. */
    async updateProfile(actor: Actor, input: UpdateProfileInput, context: RequestContext): Promise<UserView> {
      const current = await repository.findById(db, actor.userId);
      if (!current) throw new NotFoundError('User');
      const email = input.email?.toLowerCase();
      const errors: FieldError[] = [];
      let passwordHash: string | undefined;
      if (input.newPassword !== undefined) {
        if (input.currentPassword === undefined) {
          errors.push({ pointer: '/current_password', detail: 'is required to change the password' });
        } else {
          await deps.passwordAttempts?.begin(actor.userId);
          if (!(await verifyPassword(current.passwordHash, input.currentPassword))) {
            errors.push({ pointer: '/current_password', detail: 'is not the current password' });
          } else {
            await deps.passwordAttempts?.succeeded(actor.userId);
          }
        }
        if (errors.length === 0 && input.currentPassword !== undefined) {
          errors.push(...checkPasswordPolicy(input.newPassword, { username: current.username, email: email ?? current.email }, '/new_password'));
          if (errors.length === 0 && input.newPassword === input.currentPassword) {
            errors.push({ pointer: '/new_password', detail: 'must differ from the current password' });
          }
        }
      }
      if (errors.length > 0) throw new ValidationError('The profile update is invalid', errors);
      if (input.newPassword !== undefined) passwordHash = await hashPassword(input.newPassword);

      return withTransaction(
        db,
        async (uow) => {
          if (email !== undefined && email !== current.email && (await repository.emailTakenByOther(uow.tx, email, actor.userId))) {
            throw new ConflictError('A user with this e-mail address already exists');
          }
          const patch: Parameters<UsersRepository['update']>[2] = {};
          if (email !== undefined && email !== current.email) patch.email = email;
          if (input.fullName !== undefined && input.fullName !== current.fullName) patch.fullName = input.fullName;
          if (passwordHash !== undefined) patch.passwordHash = passwordHash;
          if (Object.keys(patch).length === 0) return presentUser(current);
          const row = await repository.update(uow.tx, actor.userId, patch);
          if (!row) throw new NotFoundError('User');
          const changed = Object.keys(patch)
            .filter((key) => key !== 'passwordHash')
            .map((key) => (key === 'fullName' ? 'full_name' : key));
          if (changed.length > 0) {
            await audit.record(uow.tx, {
              eventType: 'USER_UPDATED',
              userId: actor.userId,
              sessionId: actor.sessionId,
              resourceType: 'user',
              resourceId: actor.userId,
              details: { fields: changed, self_service: true },
              context,
            });
          }
          if (passwordHash !== undefined) {
            const ended = await sessions.revokeUserSessions(uow, {
              userId: actor.userId,
              reason: 'password_changed',
              exceptSessionId: actor.sessionId,
            });
            await audit.record(uow.tx, {
              eventType: 'PASSWORD_CHANGED',
              userId: actor.userId,
              sessionId: actor.sessionId,
              resourceType: 'user',
              resourceId: actor.userId,
              details: { other_sessions_revoked: ended.length },
              context,
            });
          } else {
            sessions.userChanged(uow, actor.userId);
          }
          return presentUser(row);
        },
        deps.logger,
      );
    },

    /** An active user by username, for commands that act on someone's behalf (`cdsa documents import --owner`). */
    async findActiveByUsername(username: string): Promise<UserView | undefined> {
      const row = await repository.findByUsername(db, username);
      return row && row.isActive ? presentUser(row) : undefined;
    },

    /** An active user's role and clearance (for checks made on their behalf outside a request), or undefined. */
    async accessOf(userId: string): Promise<{ role: Role; clearance: Label } | undefined> {
      const row = await repository.findById(db, userId);
      if (!row || !row.isActive) return undefined;
      return { role: row.role, clearance: effectiveClearance(row) };
    },

    /** Usernames and full names by id, for showing who did something (an approval's requester); unknown ids are left out. */
    async displayNames(ids: readonly string[]): Promise<Map<string, { username: string; full_name: string | null }>> {
      const rows = await repository.namesByIds(db, [...new Set(ids)]);
      return new Map(rows.map((row) => [row.id, { username: row.username, full_name: row.fullName }]));
    },

    /** Where to write to a user (e-mailed notifications), and whether they are still active; undefined if gone. */
    async contactOf(userId: string): Promise<{ email: string; isActive: boolean } | undefined> {
      const row = await repository.findById(db, userId);
      return row ? { email: row.email, isActive: row.isActive } : undefined;
    },

    /** Ids of active users, optionally of some roles (recipients of role-targeted notifications). */
    async activeUserIds(roles?: readonly Role[]): Promise<string[]> {
      return repository.activeIdsByRole(db, roles);
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;

import type { Db } from '../../db/client.js';
import { inUnitOfWork, withTransaction, type AfterCommitErrorLogger, type UnitOfWork } from '../../db/unit-of-work.js';
import { ForbiddenError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { JobQueue } from '../../lib/infra/jobs.js';
import type { AuditRecorder } from '../audit/audit.service.js';
import { enqueueEmails } from './notifications.email.js';
import { ROLES, hasPermission, isRole, roleAtLeast, type Actor, type RequestContext, type Role } from '../auth/permissions.js';
import type { NotificationHub, NotificationSink, StreamHandle } from './notifications.hub.js';
import { storedNotification, type NotificationRepository, type NotificationTemplate, type Recipients } from './notifications.repository.js';
import {
  DELIVERY_METHODS,
  MANDATORY_TYPE,
  MESSAGE_MAX_LENGTH,
  NOTIFICATION_PRIORITIES,
  NOTIFICATION_TYPES,
  TITLE_MAX_LENGTH,
  isNotificationType,
  type Notification,
  type NotificationContent,
  type NotificationPreference,
  type NotificationPreferenceInput,
  type NotificationPriority,
  type NotifyInput,
} from './notifications.types.js';

export interface BroadcastInput {
  type: string;
  title: string;
  message: string;
  priority?: NotificationPriority;
  /** Exactly these roles (active users only); every active user when absent. */
  target_roles?: Role[];
  data?: Record<string, unknown>;
  expires_at?: string | null;
}

export interface ListNotificationsQuery {
  unreadOnly?: boolean;
  limit?: number;
  cursor?: string;
}

export interface OpenStreamOptions {
  connectionId: string;
  /** The raw Last-Event-ID (header or `?last_event_id=`); malformed values are treated as absent. */
  lastEventId: string | undefined;
  sink: NotificationSink;
}

export interface NotificationServiceDeps {
  db: Db;
  repository: NotificationRepository;
  hub: Pick<NotificationHub, 'announce' | 'attach' | 'streamCount'>;
  audit: Pick<AuditRecorder, 'record'>;
  logger: AfterCommitErrorLogger;
  /** E-mail delivery, when SMTP_URL is configured: the e-mails of a fan-out are enqueued after it commits. */
  email?: { jobs: Pick<JobQueue, 'enqueue'>; backoffMs?: number };
  now?: () => Date;
}

/** The original design's name for the in-app method, accepted as a synonym of `in_app` (answers say `in_app`). */
export const IN_APP_ALIAS = 'realtime';

const LAST_EVENT_ID = /^\d{1,15}$/;
const PURGE_BATCH = 1_000;

/**
 * `Last-Event-ID` is the seq of the last notification the client saw. Anything but a non-negative integer (empty,
 * negative, a word, an absurdly long number) is treated as no Last-Event-ID at all: the stream starts live, without
 * replay, and the client reloads its list over HTTP — a bad header never fails the connection.
 */
export function parseLastEventId(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return LAST_EVENT_ID.test(trimmed) ? Number(trimmed) : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toTemplate(content: NotificationContent, now: Date): NotificationTemplate {
  const errors: { pointer: string; detail: string }[] = [];
  if (!isNotificationType(content.type)) errors.push({ pointer: '/type', detail: `must be one of ${NOTIFICATION_TYPES.join(', ')}` });
  const title = typeof content.title === 'string' ? content.title.trim() : '';
  if (title.length === 0 || title.length > TITLE_MAX_LENGTH) errors.push({ pointer: '/title', detail: `must be 1 to ${TITLE_MAX_LENGTH} characters` });
  if (typeof content.message !== 'string' || content.message.length > MESSAGE_MAX_LENGTH) {
    errors.push({ pointer: '/message', detail: `must be at most ${MESSAGE_MAX_LENGTH} characters` });
  }
  const priority = content.priority ?? 'normal';
  if (!NOTIFICATION_PRIORITIES.includes(priority)) errors.push({ pointer: '/priority', detail: `must be one of ${NOTIFICATION_PRIORITIES.join(', ')}` });
  if (content.data !== undefined && !isPlainObject(content.data)) errors.push({ pointer: '/data', detail: 'must be an object' });
  const expiresAt = content.expiresAt ?? null;
  if (expiresAt !== null && !(expiresAt instanceof Date && Number.isFinite(expiresAt.getTime()))) {
    errors.push({ pointer: '/expires_at', detail: 'must be a valid date' });
  }
  if (errors.length > 0) throw new ValidationError('Invalid notification', errors);
  return {
    type: content.type,
    title,
    message: content.message,
    data: content.data ?? {},
    priority,
    expiresAt,
    createdAt: now,
  };
}

function rolesAtLeast(role: Role): Role[] {
  return ROLES.filter((candidate) => roleAtLeast(candidate, role));
}

export function createNotificationService({ db, repository, hub, audit, logger, email, now = () => new Date() }: NotificationServiceDeps) {
  /** Persists in the caller's transaction (or a new one) and wakes the streams once it has committed. */
  async function fanOut(recipients: Recipients, content: NotificationContent, uow: UnitOfWork | undefined) {
    const template = toTemplate(content, now());
    return inUnitOfWork(
      db,
      uow,
      async (unit) => {
        const { seq, rows: inserted } = await repository.insertForRecipients(unit.tx, recipients, template);
        if (seq !== null) unit.afterCommit(() => hub.announce(seq, inserted, template));
        if (seq !== null && email) {
          const wanted = await repository.emailRecipients(
            unit.tx,
            template.type,
            inserted.map((row) => row.userId),
          );
          const ids = inserted.filter((row) => wanted.has(row.userId)).map((row) => row.id);
          if (ids.length > 0) unit.afterCommit(() => enqueueEmails(email.jobs, ids, email.backoffMs));
        }
        return { template, seq, inserted };
      },
      logger,
    );
  }

  async function ownedOrNotFound<T>(row: Promise<T | undefined>): Promise<T> {
    const found = await row;
    if (found === undefined) throw new NotFoundError('Notification');
    return found;
  }

  /** Every notification type with the caller's setting (enabled, in-app by default). */
  async function getPreferences(actor: Actor): Promise<NotificationPreference[]> {
    const stored = new Map((await repository.preferences(db, actor.userId)).map((row) => [row.notificationType, row]));
    return NOTIFICATION_TYPES.map((type) => {
      const row = stored.get(type);
      return {
        notification_type: type,
        enabled: type === MANDATORY_TYPE ? true : (row?.enabled ?? true),
        delivery_method: type === MANDATORY_TYPE && row?.deliveryMethod !== 'email' ? 'in_app' : (row?.deliveryMethod ?? 'in_app'),
      };
    });
  }

  return {
    /**
     * One notification for one user. Returns null when the user's preferences switch this type off (never for
     * SECURITY_ALERT) or the user does not exist.
     */
    async notify(input: NotifyInput, uow?: UnitOfWork): Promise<Notification | null> {
      const { userId, ...content } = input;
      const { template, seq, inserted } = await fanOut({ userIds: [userId] }, content, uow);
      const row = inserted[0];
      if (!row || seq === null) return null;
      return storedNotification(template, row, seq);
    },

    /** The same notification for each of these users (duplicates ignored), as one statement. */
    async notifyUsers(userIds: string[], content: NotificationContent, uow?: UnitOfWork): Promise<{ recipients: number }> {
      const unique = [...new Set(userIds)];
      if (unique.length === 0) return { recipients: 0 };
      const { inserted } = await fanOut({ userIds: unique }, content, uow);
      return { recipients: inserted.length };
    },

    /**
     * Every active user holding at least `role` (ordered ANALYST < MANAGER < ADMIN): `notifyRole('MANAGER', …)` reaches
     * managers and admins, i.e. everyone who holds the permissions of that role.
     */
    async notifyRole(role: Role, content: NotificationContent, uow?: UnitOfWork): Promise<{ recipients: number }> {
      if (!isRole(role)) throw new ValidationError('Invalid role', [{ pointer: '/role', detail: `must be one of ${ROLES.join(', ')}` }]);
      const { inserted } = await fanOut({ roles: rolesAtLeast(role) }, content, uow);
      return { recipients: inserted.length };
    },

    /** An administrator's announcement to every active user, or to the active users of exactly `target_roles`. */
    async broadcast(actor: Actor, input: BroadcastInput, context?: RequestContext): Promise<{ recipients: number }> {
      if (!hasPermission(actor.role, 'notifications:broadcast')) {
        throw new ForbiddenError('This action needs the notifications:broadcast permission');
      }
      if (input.target_roles !== undefined && (input.target_roles.length === 0 || !input.target_roles.every(isRole))) {
        throw new ValidationError('Invalid target roles', [{ pointer: '/target_roles', detail: `must list at least one of ${ROLES.join(', ')}` }]);
      }
      const roles = input.target_roles ? [...new Set(input.target_roles)] : [...ROLES];
      let expiresAt: Date | null = null;
      if (input.expires_at !== undefined && input.expires_at !== null) {
        expiresAt = new Date(input.expires_at);
        if (!Number.isFinite(expiresAt.getTime())) {
          throw new ValidationError('Invalid expiry', [{ pointer: '/expires_at', detail: 'must be an ISO-8601 date-time' }]);
        }
      }
      const type = input.type;
      if (!isNotificationType(type)) {
        throw new ValidationError('Invalid notification', [{ pointer: '/type', detail: `must be one of ${NOTIFICATION_TYPES.join(', ')}` }]);
      }
      return withTransaction(
        db,
        async (uow) => {
          const { inserted } = await fanOut(
            { roles },
            { type, title: input.title, message: input.message, priority: input.priority, data: input.data, expiresAt },
            uow,
          );
          await audit.record(uow.tx, {
            eventType: 'NOTIFICATION_BROADCAST',
            userId: actor.userId,
            sessionId: actor.sessionId,
            resourceType: 'notification',
            details: {
              notification_type: input.type,
              priority: input.priority ?? 'normal',
              target_roles: input.target_roles ?? null,
              recipients: inserted.length,
            },
            context,
          });
          return { recipients: inserted.length };
        },
        logger,
      );
    },

    /** The caller's live notifications, newest first. */
    async list(actor: Actor, query: ListNotificationsQuery = {}): Promise<Page<Notification>> {
      const limit = Math.min(Math.max(query.limit ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE);
      const cursor = decodeCursor(query.cursor, { seq: 'bigint' });
      const rows = await repository.list(db, actor.userId, {
        unreadOnly: query.unreadOnly ?? false,
        beforeSeq: cursor?.seq,
        limit: limit + 1,
        now: now(),
      });
      return toPage(rows, limit, (row) => ({ seq: row.seq }), (row) => row);
    },

    async get(actor: Actor, id: string): Promise<Notification> {
      return ownedOrNotFound(repository.find(db, actor.userId, id, now()));
    },

    async markRead(actor: Actor, id: string): Promise<Notification> {
      return ownedOrNotFound(repository.markRead(db, actor.userId, id, now()));
    },

    async markAllRead(actor: Actor): Promise<{ marked_read: number }> {
      return { marked_read: await repository.markAllRead(db, actor.userId, now()) };
    },

    async remove(actor: Actor, id: string): Promise<void> {
      if (!(await repository.remove(db, actor.userId, id, now()))) throw new NotFoundError('Notification');
    },

    async unreadCount(actor: Actor): Promise<{ unread_count: number }> {
      return { unread_count: await repository.unreadCount(db, actor.userId, now()) };
    },

    /** Every notification type with the caller's setting (enabled, in-app by default). */
    getPreferences,

    /**
     * Changes the listed types only. A type is received when it is enabled with delivery_method `in_app` (alias
     * `realtime`) or `email` (in-app and by e-mail; only when SMTP is configured); `none` switches it off like
     * `enabled: false`. SECURITY_ALERT cannot be switched off (422).
     */
    async updatePreferences(actor: Actor, requested: NotificationPreferenceInput[]): Promise<NotificationPreference[]> {
      const preferences = requested.map((preference) => ({
        ...preference,
        delivery_method: preference.delivery_method === IN_APP_ALIAS ? ('in_app' as const) : preference.delivery_method,
      }));
      const errors: { pointer: string; detail: string }[] = [];
      const seen = new Set<string>();
      preferences.forEach((preference, index) => {
        if (!isNotificationType(preference.notification_type)) {
          errors.push({ pointer: `/preferences/${index}/notification_type`, detail: `must be one of ${NOTIFICATION_TYPES.join(', ')}` });
        } else if (seen.has(preference.notification_type)) {
          errors.push({ pointer: `/preferences/${index}/notification_type`, detail: 'is listed twice' });
        }
        seen.add(preference.notification_type);
        if (!DELIVERY_METHODS.includes(preference.delivery_method)) {
          errors.push({ pointer: `/preferences/${index}/delivery_method`, detail: `must be one of ${DELIVERY_METHODS.join(', ')}, ${IN_APP_ALIAS}` });
        } else if (preference.delivery_method === 'email' && !email) {
          errors.push({ pointer: `/preferences/${index}/delivery_method`, detail: 'e-mail delivery is not configured on this server (SMTP_URL)' });
        }
        if (preference.notification_type === MANDATORY_TYPE && (!preference.enabled || preference.delivery_method === 'none')) {
          errors.push({ pointer: `/preferences/${index}`, detail: `${MANDATORY_TYPE} notifications cannot be switched off` });
        }
      });
      if (errors.length > 0) throw new ValidationError('Invalid preferences', errors);
      await repository.upsertPreferences(
        db,
        actor.userId,
        preferences.map((preference) => ({
          notificationType: preference.notification_type,
          enabled: preference.enabled,
          deliveryMethod: preference.delivery_method,
        })),
        now(),
      );
      return getPreferences(actor);
    },

    /** Starts the caller's stream: it only ever carries the caller's own notifications. */
    openStream(actor: Actor, options: OpenStreamOptions): StreamHandle {
      return hub.attach({
        connectionId: options.connectionId,
        userId: actor.userId,
        sessionId: actor.sessionId ?? null,
        lastSeenSeq: parseLastEventId(options.lastEventId),
        sink: options.sink,
      });
    },

    /** Streams held open on this instance. */
    streamCount(): number {
      return hub.streamCount();
    },

    /** Deletes expired notifications (the purge job); returns how many went. */
    async purgeExpired(): Promise<number> {
      let total = 0;
      for (;;) {
        const deleted = await repository.deleteExpired(db, now(), PURGE_BATCH);
        total += deleted;
        if (deleted < PURGE_BATCH) return total;
      }
    },
  };
}

export type NotificationService = ReturnType<typeof createNotificationService>;

import fp from 'fastify-plugin';
import { createNotificationHub } from './notifications.hub.js';
import { createEmailDelivery, createSmtpTransport, registerEmailJob } from './notifications.email.js';
import { registerPurgeJob, schedulePurge } from './notifications.jobs.js';
import { createNotificationRepository } from './notifications.repository.js';
import { notificationRoutes } from './notifications.routes.js';
import { createNotificationService, type NotificationService } from './notifications.service.js';

export type { NotificationService } from './notifications.service.js';
export type { Notification, NotificationContent, NotificationType, NotifyInput } from './notifications.types.js';

declare module 'fastify' {
  interface FastifyInstance {
    notifications: NotificationService;
  }
}

/** With Redis, how often local streams are checked against the database for wake-ups lost in pub/sub. */
const RESYNC_INTERVAL_MS = 10_000;
/** After Redis comes back, a second catch-up once the subscriber connection has re-subscribed too. */
const RECONNECT_SETTLE_MS = 1_000;

export const notificationsModule = fp(
  async (app) => {
    const { database, pubsub, jobs, redis } = app.infra;
    const repository = createNotificationRepository();
    const hub = createNotificationHub({
      db: database.db,
      repository,
      pubsub,
      logger: app.log,
      resyncIntervalMs: redis ? RESYNC_INTERVAL_MS : 0,
    });
    await hub.start();
    const smtp = app.config.smtp;
    const service = createNotificationService({
      db: database.db,
      repository,
      hub,
      audit: app.audit,
      logger: app.log,
      email: smtp ? { jobs } : undefined,
    });
    app.decorate('notifications', service);

    if (smtp) {
      const transport = createSmtpTransport(smtp);
      const delivery = createEmailDelivery({
        db: database.db,
        repository,
        transport,
        from: smtp.from,
        publicUrl: app.config.publicUrl,
        contactOf: (userId) => app.users.contactOf(userId),
        logger: app.log,
      });
      registerEmailJob(jobs, delivery);
      app.addHook('onClose', async () => transport.close());
    }

    registerPurgeJob(jobs, service, app.log);
    app.addHook('onReady', async () => {
      await schedulePurge(jobs).catch((error: unknown) =>
        app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not schedule the notification purge'),
      );
    });

    const off = app.identity.onRevoked((event) => {
      hub.revoke(event);
    });
    app.addHook('onClose', async () => off());

    if (redis) {
      // Wake-ups published while Redis was away are gone; the database still has the notifications.
      const settleTimers = new Set<NodeJS.Timeout>();
      const catchUp = () => {
        hub.resync().catch((error: unknown) => app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'notification resync failed'));
      };
      const onReady = () => {
        catchUp();
        const timer = setTimeout(() => {
          settleTimers.delete(timer);
          catchUp();
        }, RECONNECT_SETTLE_MS);
        timer.unref();
        settleTimers.add(timer);
      };
      redis.on('ready', onReady);
      app.addHook('onClose', async () => {
        redis.off('ready', onReady);
        for (const timer of settleTimers) clearTimeout(timer);
      });
    }

    app.addHook('onClose', async () => hub.close());
    app.apiV1.routes(notificationRoutes, {});
  },
  { name: 'module-notifications', dependencies: ['infra', 'module-audit', 'module-identity'] },
);

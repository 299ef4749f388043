import type { ServerResponse } from 'node:http';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { NotificationSink } from './notifications.hub.js';
import {
  BroadcastBody,
  BroadcastResponse,
  ListNotificationsQuery,
  MarkedRead,
  NotificationIdParams,
  NotificationPage,
  NotificationSchema,
  PreferencesBody,
  PreferencesResponse,
  StreamHeaders,
  StreamQuery,
  UnreadCount,
} from './notifications.schemas.js';
import { presentNotification } from './notifications.types.js';

const tags = ['notifications'];

/** Resolves once the socket has flushed what a long replay wrote (or the stream ended). */
function writable(raw: ServerResponse, signal: AbortSignal): Promise<void> {
  if (!raw.writableNeedDrain || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      raw.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    raw.on('drain', done);
    signal.addEventListener('abort', done);
  });
}

export const notificationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const notifications = app.notifications;

  app.get(
    '/notifications/stream',
    {
      config: { acceptsStreamTicket: true, requires: 'notifications:own' },
      schema: {
        tags,
        summary: 'Live notifications (server-sent events)',
        description:
          'First `event: connected` `{connection_id}`, then `id: <seq>` + `event: notification` + the notification. ' +
          'With `Last-Event-ID` (header, or `?last_event_id=`), every stored notification with a higher seq is replayed ' +
          'in order before live ones. A malformed Last-Event-ID is ignored: the stream starts live without replay. ' +
          'At most 5 streams per user and instance: opening another ends the oldest with `event: closed` ' +
          '`{reason: "stream_limit"}`. A logged-out session or deactivated user gets `{reason: "session_ended"}`.',
        querystring: StreamQuery,
        headers: StreamHeaders,
        response: {
          200: {
            description: 'text/event-stream',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
        },
      },
    },
    async (request, reply) => {
      const actor = app.requireActor(request);
      const header = request.headers['last-event-id'];
      // EventSource sends the header on its own reconnects, which is fresher than the id in the original URL.
      const lastEventId = (Array.isArray(header) ? header[0] : header) ?? request.query.last_event_id;
      const stream = app.infra.sse.open(request, reply);
      const raw = reply.raw;
      const sink: NotificationSink = {
        get closed() {
          return stream.closed;
        },
        connected: () => stream.send('connected', { connection_id: stream.id }),
        send: (notification, json) => stream.sendJson('notification', json ?? JSON.stringify(notification), notification.seq),
        ready: () => writable(raw, stream.signal),
        close: (reason) => stream.close({ event: 'closed', data: { reason } }),
      };
      const handle = notifications.openStream(actor, { connectionId: stream.id, lastEventId, sink });
      stream.onClose(() => handle.detach());
    },
  );

  app.get(
    '/notifications',
    {
      schema: {
        tags,
        summary: "The caller's notifications, newest first (expired ones are not listed)",
        querystring: ListNotificationsQuery,
        response: { 200: NotificationPage },
      },
    },
    async (request) => {
      const page = await notifications.list(app.requireActor(request), {
        unreadOnly: request.query.unread_only,
        limit: request.query.limit,
        cursor: request.query.cursor,
      });
      return { items: page.items.map(presentNotification), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/notifications/unread-count',
    { schema: { tags, summary: 'How many live notifications the caller has not read', response: { 200: UnreadCount } } },
    async (request) => notifications.unreadCount(app.requireActor(request)),
  );

  app.put(
    '/notifications/mark-all-read',
    { schema: { tags, summary: "Marks all the caller's notifications read", response: { 200: MarkedRead } } },
    async (request) => notifications.markAllRead(app.requireActor(request)),
  );

  app.get(
    '/notifications/preferences',
    {
      schema: {
        tags,
        summary: 'Which notification types the caller receives',
        response: { 200: PreferencesResponse },
      },
    },
    async (request) => ({ preferences: await notifications.getPreferences(app.requireActor(request)) }),
  );

  app.put(
    '/notifications/preferences',
    {
      schema: {
        tags,
        summary: 'Changes the listed types (others keep their setting)',
        description:
          'A type is received when `enabled` and `delivery_method` is `in_app`; `none` switches it off too. ' +
          'Switched-off types are neither stored nor streamed. SECURITY_ALERT cannot be switched off (422).',
        body: PreferencesBody,
        response: { 200: PreferencesResponse },
      },
    },
    async (request) => ({
      preferences: await notifications.updatePreferences(app.requireActor(request), request.body.preferences),
    }),
  );

  app.post(
    '/notifications/broadcast',
    {
      config: { requires: 'notifications:broadcast' },
      schema: {
        tags,
        summary: 'Sends a notification to every active user, or to the active users of exactly `target_roles`',
        body: BroadcastBody,
        response: { 202: BroadcastResponse },
      },
    },
    async (request, reply) => {
      const result = await notifications.broadcast(app.requireActor(request), request.body, request.requestContext);
      return reply.code(202).send(result);
    },
  );

  app.get(
    '/notifications/:id',
    {
      schema: { tags, summary: "One of the caller's notifications", params: NotificationIdParams, response: { 200: NotificationSchema } },
    },
    async (request) => presentNotification(await notifications.get(app.requireActor(request), request.params.id)),
  );

  app.put(
    '/notifications/:id/read',
    {
      schema: { tags, summary: 'Marks one notification read', params: NotificationIdParams, response: { 200: NotificationSchema } },
    },
    async (request) => presentNotification(await notifications.markRead(app.requireActor(request), request.params.id)),
  );

  app.delete(
    '/notifications/:id',
    {
      schema: { tags, summary: 'Deletes one notification', params: NotificationIdParams, response: { 204: Type.Null() } },
    },
    async (request, reply) => {
      await notifications.remove(app.requireActor(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};

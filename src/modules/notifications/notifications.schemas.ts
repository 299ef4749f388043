import { Type, type Static } from '@sinclair/typebox';
import { MultiLineText, SingleLineText } from '../../lib/text-formats.js';
import { ROLES } from '../auth/permissions.js';
import {
  DELIVERY_METHODS,
  MESSAGE_MAX_LENGTH,
  NOTIFICATION_PRIORITIES,
  NOTIFICATION_TYPES,
  TITLE_MAX_LENGTH,
} from './notifications.types.js';

const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((value) => Type.Literal(value)));

export const NotificationTypeSchema = literals(NOTIFICATION_TYPES);
export const PrioritySchema = literals(NOTIFICATION_PRIORITIES);
const DateTime = Type.String({ format: 'date-time' });

export const NotificationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  seq: Type.Integer({ minimum: 1, description: 'Strictly increasing per user, with gaps (the recipients of one fan-out share it); the SSE event id' }),
  type: Type.String(),
  title: Type.String(),
  message: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
  priority: PrioritySchema,
  is_read: Type.Boolean(),
  read_at: Type.Union([DateTime, Type.Null()]),
  expires_at: Type.Union([DateTime, Type.Null()]),
  created_at: DateTime,
});

export const NotificationIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

export const ListNotificationsQuery = Type.Object({
  unread_only: Type.Optional(Type.Boolean({ default: false })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: Type.Optional(Type.String()),
});
export type ListNotificationsQuery = Static<typeof ListNotificationsQuery>;

export const NotificationPage = Type.Object({
  items: Type.Array(NotificationSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

export const UnreadCount = Type.Object({ unread_count: Type.Integer({ minimum: 0 }) });
export const MarkedRead = Type.Object({ marked_read: Type.Integer({ minimum: 0 }) });

export const PreferenceSchema = Type.Object(
  {
    notification_type: NotificationTypeSchema,
    enabled: Type.Boolean(),
    delivery_method: literals(DELIVERY_METHODS),
  },
  { additionalProperties: false },
);

/** What a client sends: `realtime` is accepted as the in-app method's other name. */
export const PreferenceInputSchema = Type.Object(
  {
    notification_type: NotificationTypeSchema,
    enabled: Type.Boolean(),
    delivery_method: Type.Union([...DELIVERY_METHODS, 'realtime' as const].map((method) => Type.Literal(method)), {
      description: 'in_app (alias realtime): inbox and stream; email: the same, and an e-mail (when SMTP is configured); none: not received',
    }),
  },
  { additionalProperties: false },
);

export const PreferencesBody = Type.Object(
  { preferences: Type.Array(PreferenceInputSchema, { maxItems: NOTIFICATION_TYPES.length }) },
  { additionalProperties: false },
);
export type PreferencesBody = Static<typeof PreferencesBody>;

export const PreferencesResponse = Type.Object({ preferences: Type.Array(PreferenceSchema) });

export const BroadcastBody = Type.Object(
  {
    type: NotificationTypeSchema,
    title: SingleLineText({ minLength: 1, maxLength: TITLE_MAX_LENGTH }),
    message: MultiLineText({ maxLength: MESSAGE_MAX_LENGTH }),
    priority: Type.Optional(PrioritySchema),
    target_roles: Type.Optional(
      Type.Array(literals(ROLES), {
        minItems: 1,
        uniqueItems: true,
        description: 'Exactly these roles (active users only); every active user when absent',
      }),
    ),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    expires_at: Type.Optional(Type.Union([DateTime, Type.Null()], { description: 'After this, the notification is no longer listed or streamed' })),
  },
  { additionalProperties: false },
);
export type BroadcastBody = Static<typeof BroadcastBody>;

export const BroadcastResponse = Type.Object({ recipients: Type.Integer({ minimum: 0 }) });

export const StreamQuery = Type.Object({
  last_event_id: Type.Optional(
    Type.String({
      description:
        'For browsers that cannot send the Last-Event-ID header on the first connection. The header wins when both are given. ' +
        'A value that is not a non-negative integer is ignored (the stream starts live, without replay).',
    }),
  ),
  ticket: Type.Optional(Type.String({ description: 'A single-use ticket from POST /auth/stream-ticket (for EventSource)' })),
});
export type StreamQuery = Static<typeof StreamQuery>;

export const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ description: 'The seq of the last notification received; a malformed value is ignored (no replay)' }),
  ),
});

import type { notifications } from '../../db/schema/notifications.js';
import {
  DELIVERY_METHODS,
  NOTIFICATION_PRIORITIES,
  type DeliveryMethod,
  type NotificationPriority,
} from '../../db/schema/notifications.js';

export { DELIVERY_METHODS, NOTIFICATION_PRIORITIES, type DeliveryMethod, type NotificationPriority };

/** Notification types of the contract. */
export const NOTIFICATION_TYPES = [
  'APPROVAL_REQUESTED',
  'APPROVAL_DECISION',
  'DOCUMENT_INDEXED',
  'DOCUMENT_PROCESSING_FAILED',
  'TOOL_ADDED',
  'TOOL_UPDATED',
  'TOOL_REMOVED',
  'SECURITY_ALERT',
  'VAULT_SECRET_ADDED',
  'VAULT_SECRET_ACCESSED',
  'SYSTEM_MAINTENANCE',
  'LONG_RUNNING_TASK_COMPLETED',
] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/** Users cannot switch this type off: they must learn about logins, token reuse and the like. */
export const MANDATORY_TYPE: NotificationType = 'SECURITY_ALERT';

export const TITLE_MAX_LENGTH = 200;
export const MESSAGE_MAX_LENGTH = 4_000;

export function isNotificationType(value: unknown): value is NotificationType {
  return typeof value === 'string' && (NOTIFICATION_TYPES as readonly string[]).includes(value);
}

/** A stored notification (the row). */
export type Notification = typeof notifications.$inferSelect;

/** What other modules pass to `notify`. */
export interface NotifyInput {
  userId: string;
  type: NotificationType;
  title: string;
  message: string;
  data?: Record<string, unknown>;
  priority?: NotificationPriority;
  /** After this instant the notification is neither listed nor streamed, and the purge job deletes it. */
  expiresAt?: Date | null;
}

export type NotificationContent = Omit<NotifyInput, 'userId'>;

/** The notification as it leaves the server (HTTP responses and SSE events). */
export interface NotificationView {
  id: string;
  seq: number;
  type: string;
  title: string;
  message: string;
  data: Record<string, unknown>;
  priority: NotificationPriority;
  is_read: boolean;
  read_at: string | null;
  expires_at: string | null;
  created_at: string;
}

export function presentNotification(row: Notification): NotificationView {
  return {
    id: row.id,
    seq: row.seq,
    type: row.type,
    title: row.title,
    message: row.message,
    data: row.data,
    priority: row.priority,
    is_read: row.isRead,
    read_at: row.readAt ? row.readAt.toISOString() : null,
    expires_at: row.expiresAt ? row.expiresAt.toISOString() : null,
    created_at: row.createdAt.toISOString(),
  };
}

export interface NotificationPreference {
  notification_type: NotificationType;
  enabled: boolean;
  delivery_method: DeliveryMethod;
}

/** A preference as a client may send it: `realtime` is the original design's name for `in_app`. */
export interface NotificationPreferenceInput extends Omit<NotificationPreference, 'delivery_method'> {
  delivery_method: DeliveryMethod | 'realtime';
}

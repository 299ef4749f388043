import { get, streamTicket } from './api';

export interface Notification {
  id: string;
  seq: number;
  type: string;
  title: string;
  message: string;
  data: Record<string, unknown> | null;
  priority: string;
  is_read: boolean;
  created_at: string;
}

type Listener = (notification: Notification) => void;
const listeners = new Set<Listener>();
const countListeners = new Set<(count: number) => void>();
let unread = 0;
let source: EventSource | null = null;
let retry: ReturnType<typeof setTimeout> | undefined;
let stopped = true;

/** Everything that arrives on the live stream (the approval banner and the inbox listen here). */
export function onNotification(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onUnreadCount(listener: (count: number) => void): () => void {
  countListeners.add(listener);
  listener(unread);
  return () => countListeners.delete(listener);
}

export function setUnread(count: number): void {
  unread = Math.max(0, count);
  for (const listener of countListeners) listener(unread);
}

export async function refreshUnread(): Promise<void> {
  const { unread_count } = await get<{ unread_count: number }>('/notifications/unread-count');
  setUnread(unread_count);
}

/**
 * The live stream over EventSource, which cannot send headers: each connection opens with a fresh single-use stream
 * ticket. After a drop the count is read again, so nothing missed while away is left out of it.
 */
export function startNotifications(): void {
  stopped = false;
  void connect();
}

async function connect(): Promise<void> {
  if (stopped) return;
  try {
    await refreshUnread();
    const ticket = await streamTicket();
    if (stopped) return;
    source = new EventSource(`/api/v1/notifications/stream?ticket=${encodeURIComponent(ticket)}`);
    source.addEventListener('notification', (event) => {
      const notification = JSON.parse((event as MessageEvent<string>).data) as Notification;
      if (!notification.is_read) setUnread(unread + 1);
      for (const listener of listeners) listener(notification);
    });
    source.addEventListener('error', () => {
      source?.close();
      source = null;
      schedule();
    });
  } catch {
    schedule();
  }
}

function schedule(): void {
  if (stopped) return;
  clearTimeout(retry);
  retry = setTimeout(() => void connect(), 3000);
}

export function stopNotifications(): void {
  stopped = true;
  clearTimeout(retry);
  source?.close();
  source = null;
  setUnread(0);
}

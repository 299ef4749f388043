import { useEffect } from 'react';
import { get, put, type Page } from '../api';
import { onNotification, refreshUnread, type Notification } from '../notifications';
import { navigate } from '../router';
import { Empty, ErrorMessage, formatTime, useLoad } from '../ui';

function target(n: Notification): string | null {
  const link = typeof n.data?.link === 'string' ? n.data.link : null;
  if (n.type.startsWith('APPROVAL')) return n.type === 'APPROVAL_REQUESTED' ? '/approvals' : '/approvals?view=mine';
  if (n.type.startsWith('DOCUMENT') && typeof n.data?.document_id === 'string') return `/documents/${n.data.document_id}`;
  return link && link.startsWith('/') && !link.startsWith('/api') ? link : null;
}

export default function Notifications() {
  const list = useLoad((signal) => get<Page<Notification>>('/notifications?limit=100', signal), []);
  const { reload } = list;
  useEffect(() => onNotification(() => reload()), [reload]);

  async function markRead(n: Notification) {
    await put(`/notifications/${n.id}/read`);
    await refreshUnread();
    reload();
  }
  async function markAll() {
    await put('/notifications/mark-all-read');
    await refreshUnread();
    reload();
  }
  const items = list.data?.items ?? [];
  return (
    <section>
      <h1>Notifications</h1>
      <button type="button" onClick={() => void markAll()} disabled={!items.some((n) => !n.is_read)}>
        Mark all read
      </button>
      <ErrorMessage error={list.error} />
      {items.length === 0 && !list.loading ? <Empty>No notifications. Approval requests, decisions and finished documents show up here.</Empty> : null}
      <ul className="cards">
        {items.map((n) => {
          const to = target(n);
          return (
            <li key={n.id} className={n.is_read ? 'card read' : 'card unread'}>
              <h3>
                {n.title} {n.is_read ? null : <span className="badge">new</span>}
              </h3>
              <p>{n.message}</p>
              <p className="muted">{formatTime(n.created_at)}</p>
              <div className="actions">
                {to ? (
                  <button type="button" onClick={() => { void (n.is_read ? undefined : markRead(n)); navigate(to); }}>
                    Open
                  </button>
                ) : null}
                {n.is_read ? null : (
                  <button type="button" className="secondary" onClick={() => void markRead(n)}>
                    Mark read
                  </button>
                )}
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

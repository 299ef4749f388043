import { useEffect, useState } from 'react';
import { onUnreadCount } from './notifications';
import { Link } from './ui';

/** The bell: the live unread count (server-sent events), a link to the list. */
export function Bell() {
  const [count, setCount] = useState(0);
  useEffect(() => onUnreadCount(setCount), []);
  return (
    <Link to="/notifications" className="bell">
      <svg aria-hidden="true" width="18" height="18" viewBox="0 0 24 24" className="bell-icon">
        <path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z" />
      </svg>
      <span className="visually-hidden">Notifications, </span>
      <span data-testid="unread-count" className={count > 0 ? 'count live' : 'count'}>
        {count}
      </span>
      <span className="visually-hidden"> unread</span>
    </Link>
  );
}

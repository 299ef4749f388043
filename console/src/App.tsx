import { lazy, Suspense, useEffect, useState } from 'react';
import { hasRole, logout, onSessionChange, refresh, user as currentUser, type User } from './api';
import { Bell } from './Bell';
import { startNotifications, stopNotifications } from './notifications';
import { navigate, useLocation } from './router';
import { SignIn } from './SignIn';
import { Link } from './ui';

const Chat = lazy(() => import('./views/Chat'));
const Approvals = lazy(() => import('./views/Approvals'));
const Notifications = lazy(() => import('./views/Notifications'));
const Documents = lazy(() => import('./views/Documents'));
const Audit = lazy(() => import('./views/Audit'));
const Vault = lazy(() => import('./views/Vault'));
const Admin = lazy(() => import('./views/Admin'));
const Account = lazy(() => import('./views/Account'));

interface NavItem {
  to: string;
  label: string;
  visible: (u: User) => boolean;
}

const NAV: NavItem[] = [
  { to: '/chat', label: 'Chat', visible: () => true },
  { to: '/approvals', label: 'Approvals', visible: () => true },
  { to: '/documents', label: 'Documents', visible: () => true },
  { to: '/audit', label: 'Audit', visible: () => true },
  { to: '/vault', label: 'Vault', visible: () => true },
  { to: '/admin', label: 'Admin', visible: (u) => hasRole(u, 'ADMIN') },
  { to: '/account', label: 'Account', visible: () => true },
];

function View({ path, me }: { path: string; me: User }) {
  const section = path.split('/')[1] ?? '';
  switch (section) {
    case 'approvals':
      return <Approvals me={me} />;
    case 'notifications':
      return <Notifications />;
    case 'documents':
      return <Documents me={me} />;
    case 'audit':
      return <Audit me={me} />;
    case 'vault':
      return <Vault me={me} />;
    case 'admin':
      return hasRole(me, 'ADMIN') ? <Admin me={me} /> : <p>Administration needs the ADMIN role.</p>;
    case 'account':
      return <Account me={me} />;
    default:
      return <Chat me={me} />;
  }
}

export function App() {
  const [me, setMe] = useState<User | null>(currentUser());
  const [booting, setBooting] = useState(true);
  const { path } = useLocation();

  useEffect(() => onSessionChange(setMe), []);
  useEffect(() => {
    // A reload keeps the session through the refresh cookie; the access token itself was only ever in memory.
    if (path.startsWith('/sign-in/')) {
      setBooting(false);
      return;
    }
    void refresh().finally(() => setBooting(false));
  }, []);
  useEffect(() => {
    if (!me) return;
    startNotifications();
    return () => stopNotifications();
  }, [me]);
  useEffect(() => {
    if (me && (path === '/' || path.startsWith('/sign-in'))) navigate('/chat');
  }, [me, path]);

  if (booting) return <p className="boot" role="status">Loading the console…</p>;
  if (!me) return <SignIn />;

  const section = `/${path.split('/')[1] ?? ''}`;
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">CDSA</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((item) => item.visible(me)).map((item) => (
              <li key={item.to}>
                <Link to={item.to} aria-current={section === item.to ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <Bell />
        <span className="who" title={`${me.role}, clearance ${me.clearance}`}>
          {me.full_name || me.username} <span className="badge">{me.role}</span>
        </span>
        <button type="button" onClick={() => void logout()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p role="status">Loading…</p>}>
          <View path={path} me={me} />
        </Suspense>
      </main>
    </div>
  );
}

import { useEffect, useState, type FormEvent } from 'react';
import { errorMessage, finishOidc, login, verifyMfa } from './api';
import { navigate } from './router';
import { CodeField } from './StepUp';
import { ErrorMessage } from './ui';

interface ConsoleSettings {
  oidc: boolean;
  registration: 'open' | 'closed';
}

/** Password sign-in, the TOTP step for users with a second factor, and single sign-on when it is configured. */
export function SignIn() {
  const [settings, setSettings] = useState<ConsoleSettings>({ oidc: false, registration: 'closed' });
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [mfaToken, setMfaToken] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    fetch('/console-settings.json')
      .then((r) => (r.ok ? (r.json() as Promise<ConsoleSettings>) : null))
      .then((s) => s && setSettings(s))
      .catch(() => undefined);
    if (location.pathname === '/sign-in/callback') {
      setBusy(true);
      finishOidc(location.search)
        .then((outcome) => {
          if (outcome.kind === 'mfa') setMfaToken(outcome.mfaToken);
          history.replaceState(null, '', '/');
        })
        .catch((e: unknown) => {
          setError(errorMessage(e));
          history.replaceState(null, '', '/');
        })
        .finally(() => setBusy(false));
    }
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const outcome = mfaToken ? await verifyMfa(mfaToken, code) : await login(username, password);
      if (outcome.kind === 'mfa') setMfaToken(outcome.mfaToken);
      else navigate('/chat');
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin" id="main">
      <h1>CDSA console</h1>
      <p className="muted">Confidential Data Steward Agent</p>
      <form onSubmit={(e) => void submit(e)} aria-label={mfaToken ? 'Second factor' : 'Sign in'}>
        {mfaToken ? (
          <>
            <p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>
            <CodeField label="Code" value={code} onChange={setCode} autoFocus />
          </>
        ) : (
          <>
            <label>
              Username or e-mail
              <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" autoFocus required />
            </label>
            <label>
              Password
              <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required />
            </label>
          </>
        )}
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {mfaToken ? 'Verify' : busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {settings.oidc && !mfaToken ? (
        <p>
          <a className="button secondary" href="/api/v1/auth/oidc/login">
            Sign in with single sign-on
          </a>
        </p>
      ) : null}
    </main>
  );
}

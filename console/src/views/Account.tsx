import { useState } from 'react';
import { logout, post, request, type User } from '../api';
import { CodeField } from '../StepUp';
import { ErrorMessage } from '../ui';
import { ApiKeys } from './ApiKeys';

interface Enrollment {
  secret: string;
  otpauth_uri: string;
  qr_data_url: string;
}

export default function Account({ me }: { me: User }) {
  const [enrollment, setEnrollment] = useState<Enrollment | null>(null);
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);

  async function run(action: () => Promise<void>) {
    setError(null);
    setMessage(null);
    try {
      await action();
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section>
      <h1>Account</h1>
      <dl className="args">
        <div>
          <dt>Username</dt>
          <dd>{me.username}</dd>
        </div>
        <div>
          <dt>Role</dt>
          <dd>{me.role}</dd>
        </div>
        <div>
          <dt>Clearance</dt>
          <dd>{me.clearance}</dd>
        </div>
        <div>
          <dt>Second factor</dt>
          <dd>{me.mfa_enabled ? 'enabled' : 'not enabled'}</dd>
        </div>
      </dl>
      <h2>Sessions</h2>
      <p>Signing out everywhere ends every session of yours at once, on every device, this one included.</p>
      <button type="button" className="danger" onClick={() => void run(() => logout(true))}>
        Sign out everywhere
      </button>
      <h2>Two-factor authentication</h2>
      {recovery ? (
        <div className="card">
          <p>Keep these recovery codes somewhere safe; each works once and they are shown only now.</p>
          <pre className="json">{recovery.join('\n')}</pre>
        </div>
      ) : null}
      {!me.mfa_enabled && !enrollment ? (
        <button type="button" onClick={() => void run(async () => setEnrollment(await post<Enrollment>('/auth/mfa/totp/enroll')))}>
          Set up an authenticator app
        </button>
      ) : null}
      {enrollment ? (
        <div className="card">
          <p>Scan the code with your authenticator app (or enter the secret), then type the 6-digit code it shows.</p>
          <img src={enrollment.qr_data_url} alt="QR code of the authenticator secret" width={180} height={180} />
          <p>
            Secret: <code>{enrollment.secret}</code>
          </p>
          <CodeField label="Code" value={code} onChange={setCode} />
          <button
            type="button"
            onClick={() =>
              void run(async () => {
                const { recovery_codes } = await post<{ recovery_codes: string[] }>('/auth/mfa/totp/confirm', { code: code.trim() });
                setRecovery(recovery_codes);
                setEnrollment(null);
                setMessage('Two-factor authentication is on. Sign in again to see it everywhere.');
              })
            }
          >
            Confirm
          </button>
        </div>
      ) : null}
      {me.mfa_enabled ? (
        <div className="row">
          <CodeField label="Code to turn it off" value={code} onChange={setCode} />
          <button type="button" className="danger" onClick={() => void run(async () => { await request('DELETE', '/auth/mfa/totp', { body: { code: code.trim() } }); })}>
            Turn off
          </button>
        </div>
      ) : null}
      {message ? <p role="status">{message}</p> : null}
      <ErrorMessage error={error} />
      <h2>API keys</h2>
      <p>A key acts as you, within its scopes, for programs that call the OpenAI-compatible API (/v1) or the MCP endpoint (/mcp).</p>
      <ApiKeys />
    </section>
  );
}

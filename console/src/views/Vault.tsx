import { useState } from 'react';
import { errorMessage, get, hasRole, post, put, type Page, type User } from '../api';
import { StepUpField, useStepUp } from '../StepUp';
import { Dialog, Empty, ErrorMessage, formatTime, useLoad } from '../ui';

interface Secret {
  id: string;
  name: string;
  description: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  last_accessed_at: string | null;
}

function Reveal({ secret, onClose }: { secret: Secret; onClose: () => void }) {
  const [value, setValue] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const stepUp = useStepUp('Revealing');
  async function reveal() {
    setError(null);
    try {
      const full = await stepUp.guard(() => get<Secret & { value: string }>(`/vault/secrets/${secret.id}`));
      setValue(full.value);
    } catch (e) {
      setError(errorMessage(e));
    }
  }
  return (
    <Dialog title={`Reveal “${secret.name}”`} open onClose={onClose}>
      {value === null ? (
        <>
          <p className="notice warn">Revealing is recorded in the audit trail with your name, and the administrators are notified.</p>
          <StepUpField stepUp={stepUp} />
          <ErrorMessage error={error} />
          <div className="actions">
            <button type="button" className="danger" onClick={() => void reveal()}>
              Reveal the value
            </button>
            <button type="button" className="secondary" onClick={onClose}>
              Cancel
            </button>
          </div>
        </>
      ) : (
        <>
          <pre className="json" data-testid="secret-value">
            {value}
          </pre>
          <button type="button" onClick={onClose}>
            Close
          </button>
        </>
      )}
    </Dialog>
  );
}

function Versions({ secret }: { secret: Secret }) {
  const versions = useLoad((signal) => get<{ items: Array<{ version: number; created_at: string; created_by: string | null }> }>(`/vault/secrets/${secret.id}/versions`, signal), [secret.id, secret.version]);
  return (
    <ul>
      {(versions.data?.items ?? []).map((v) => (
        <li key={v.version}>
          version {v.version}, {formatTime(v.created_at)}
        </li>
      ))}
    </ul>
  );
}

export default function Vault({ me }: { me: User }) {
  const list = useLoad((signal) => get<Page<Secret>>('/vault/secrets?limit=200', signal), []);
  const [revealing, setRevealing] = useState<Secret | null>(null);
  const [expanded, setExpanded] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const admin = hasRole(me, 'ADMIN');
  const items = list.data?.items ?? [];

  async function act(action: () => Promise<string>) {
    setError(null);
    setMessage(null);
    try {
      setMessage(await action());
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  return (
    <section>
      <h1>Vault</h1>
      <ErrorMessage error={list.error} />
      {admin ? (
        <form
          className="row"
          aria-label="New secret"
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              await post('/vault/secrets', { name, value });
              setName('');
              setValue('');
              return `Secret ${name} stored.`;
            });
          }}
        >
          <label>
            Name
            <input value={name} onChange={(e) => setName(e.target.value)} required />
          </label>
          <label>
            Value
            <input type="password" value={value} onChange={(e) => setValue(e.target.value)} required autoComplete="off" />
          </label>
          <button type="submit">Add secret</button>
          <button type="button" className="secondary" onClick={() => void act(async () => { const r = await post<{ rotated: number; key_id: string }>('/vault/rotate'); return `Re-encrypted ${r.rotated} values with key ${r.key_id}.`; })}>
            Rotate encryption key
          </button>
        </form>
      ) : null}
      {message ? <p role="status">{message}</p> : null}
      <ErrorMessage error={error} />
      {items.length === 0 && !list.loading ? <Empty>{admin ? 'No secrets yet. Add one above; tools can then use it by name.' : 'No secrets yet. An administrator adds them.'}</Empty> : null}
      {items.length > 0 ? (
        <table>
          <caption className="visually-hidden">Secrets</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Description</th>
              <th scope="col">Version</th>
              <th scope="col">Last read</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id}>
                <td>
                  <code>{s.name}</code>
                </td>
                <td>{s.description ?? '—'}</td>
                <td>
                  <button type="button" className="link" aria-expanded={expanded === s.id} onClick={() => setExpanded(expanded === s.id ? null : s.id)}>
                    v{s.version}
                  </button>
                  {expanded === s.id ? <Versions secret={s} /> : null}
                </td>
                <td>{formatTime(s.last_accessed_at)}</td>
                <td>
                  {hasRole(me, 'MANAGER') ? (
                    <button type="button" onClick={() => setRevealing(s)}>
                      Reveal…
                    </button>
                  ) : null}
                  {admin ? (
                    <button
                      type="button"
                      className="secondary"
                      onClick={() => {
                        const next = window.prompt(`New value for ${s.name}`);
                        if (next) void act(async () => { await put(`/vault/secrets/${s.id}`, { value: next }); return `${s.name} has a new version.`; });
                      }}
                    >
                      New version…
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {revealing ? <Reveal secret={revealing} onClose={() => { setRevealing(null); list.reload(); }} /> : null}
    </section>
  );
}

import { useState, type FormEvent } from 'react';
import { del, get, post, query, type Page } from '../api';
import { Empty, ErrorMessage, formatTime, useLoad } from '../ui';

const SCOPES = [
  { scope: 'chat', what: 'chat completions on /v1' },
  { scope: 'embeddings', what: 'embeddings on /v1' },
  { scope: 'documents:read', what: 'document tools over MCP' },
  { scope: 'mcp', what: 'the MCP endpoint /mcp' },
] as const;

interface ApiKey {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  expires_at: string;
  created_at: string;
  last_used_at: string | null;
}

/** The key just created: shown once, with a copy button, until dismissed. */
function NewKey({ created, onDismiss }: { created: ApiKey & { key: string }; onDismiss: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied('Copied to the clipboard.');
    } catch {
      setCopied('The browser did not allow copying: select the key and copy it yourself.');
    }
  }
  return (
    <div className="card newkey" role="status">
      <p>
        <strong>{created.name}</strong> is ready. Copy the key now: it is shown this once and cannot be read again.
      </p>
      <p>
        <code data-testid="new-key" className="secretkey">
          {created.key}
        </code>
      </p>
      <div className="actions">
        <button type="button" onClick={() => void copy()}>
          Copy the key
        </button>
        <button type="button" className="secondary" onClick={onDismiss}>
          I have stored it
        </button>
      </div>
      {copied ? <p>{copied}</p> : null}
    </div>
  );
}

function CreateKey({ onCreated }: { onCreated: (key: ApiKey & { key: string }) => void }) {
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>(['chat']);
  const [days, setDays] = useState('90');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const created = await post<ApiKey & { key: string }>('/api-keys', { name: name.trim(), scopes, expires_in_days: Number(days) });
      setName('');
      onCreated(created);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form aria-label="New API key" onSubmit={(e) => void submit(e)}>
      <div className="row">
        <label>
          Key name
          <input value={name} onChange={(e) => setName(e.target.value)} maxLength={100} required />
        </label>
        <label>
          Expires after (days)
          <input type="number" min={1} max={365} value={days} onChange={(e) => setDays(e.target.value)} required />
        </label>
      </div>
      <fieldset className="row">
        <legend>Scopes</legend>
        {SCOPES.map(({ scope, what }) => (
          <label key={scope} className="check">
            <input
              type="checkbox"
              checked={scopes.includes(scope)}
              onChange={(e) => setScopes(e.target.checked ? [...scopes, scope] : scopes.filter((s) => s !== scope))}
            />
            <code>{scope}</code> <small className="muted">{what}</small>
          </label>
        ))}
      </fieldset>
      <ErrorMessage error={error} />
      <button type="submit" disabled={busy || scopes.length === 0}>
        Create key
      </button>
    </form>
  );
}

/**
 * API keys for /v1 and /mcp. Without `userId`: the caller's own, with creation. With it (users:manage): another
 * user's keys, to see and revoke.
 */
export function ApiKeys({ userId, ownerName }: { userId?: string; ownerName?: string }) {
  const list = useLoad((signal) => get<Page<ApiKey>>(`/api-keys${query({ user_id: userId, limit: 200 })}`, signal), [userId]);
  const [created, setCreated] = useState<(ApiKey & { key: string }) | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const items = list.data?.items ?? [];

  async function revoke(key: ApiKey) {
    setError(null);
    try {
      await del(`/api-keys/${key.id}`);
      setConfirming(null);
      setMessage(`${key.name} is revoked: it stopped working at once.`);
      list.reload();
    } catch (e) {
      setError(e);
    }
  }

  return (
    <div className="apikeys">
      {userId ? null : (
        <>
          {created ? <NewKey created={created} onDismiss={() => setCreated(null)} /> : null}
          <CreateKey
            onCreated={(key) => {
              setCreated(key);
              setMessage(null);
              list.reload();
            }}
          />
        </>
      )}
      {message ? <p role="status">{message}</p> : null}
      <ErrorMessage error={list.error ?? error} />
      {items.length === 0 && !list.loading ? (
        <Empty>{userId ? `${ownerName ?? 'This user'} has no API keys.` : 'No API keys yet. Create one above to call /v1 or /mcp from a program.'}</Empty>
      ) : null}
      {items.length > 0 ? (
        <table>
          <caption className="visually-hidden">{userId ? `API keys of ${ownerName ?? userId}` : 'Your API keys'}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Key</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((k) => (
              <tr key={k.id} data-testid="api-key">
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{k.scopes.join(', ')}</td>
                <td>{formatTime(k.created_at)}</td>
                <td>{new Date(k.expires_at) < new Date() ? <span className="error">expired {formatTime(k.expires_at)}</span> : formatTime(k.expires_at)}</td>
                <td>{formatTime(k.last_used_at)}</td>
                <td>
                  {confirming === k.id ? (
                    <>
                      <button type="button" className="danger" onClick={() => void revoke(k)}>
                        Revoke {k.name} now
                      </button>{' '}
                      <button type="button" className="secondary" onClick={() => setConfirming(null)}>
                        Keep
                      </button>
                    </>
                  ) : (
                    <button type="button" className="secondary" aria-label={`Revoke ${k.name}`} onClick={() => setConfirming(k.id)}>
                      Revoke…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

import { useState } from 'react';
import { get, patch, post, put, type Page, type User } from '../api';
import { StepUpField, StepUpNeeded, useStepUp } from '../StepUp';
import { Empty, ErrorMessage, formatTime, useLoad } from '../ui';
import { ApiKeys } from './ApiKeys';
import { McpServers } from './McpServers';
import { RoutingPolicy } from './RoutingPolicy';

const ROLES = ['ANALYST', 'MANAGER', 'ADMIN'];
const CLEARANCES = ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'];

interface Tool {
  id: string;
  name: string;
  description: string;
  required_role: string;
  requires_approval: boolean;
  approvals_required: number;
  is_enabled: boolean;
  implementation: { type: string };
}
interface Model {
  id: string;
  provider: string;
  is_local: boolean;
  is_enabled: boolean;
  context_window: number | null;
}

function Users({ me }: { me: User }) {
  const list = useLoad((signal) => get<Page<User>>('/users?limit=200', signal), []);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  // A role or clearance change that waits for a step-up code, sent again with it.
  const [waiting, setWaiting] = useState<{ u: User; body: Record<string, unknown>; what: string } | null>(null);
  const stepUp = useStepUp('Changing a role or clearance');
  async function change(u: User, body: Record<string, unknown>, what: string) {
    setError(null);
    setMessage(null);
    try {
      await stepUp.guard(() => patch(`/users/${u.id}`, body));
      setWaiting(null);
      setMessage(`${u.username}: ${what}.`);
      list.reload();
    } catch (e) {
      if (e instanceof StepUpNeeded) setWaiting({ u, body, what });
      setError(e);
    }
  }
  const items = list.data?.items ?? [];
  return (
    <>
      <h2>Users</h2>
      <ErrorMessage error={list.error ?? error} />
      {message ? <p role="status">{message}</p> : null}
      {waiting ? (
        <div className="row">
          <StepUpField stepUp={stepUp} />
          <button type="button" onClick={() => void change(waiting.u, waiting.body, waiting.what)}>
            Confirm the change
          </button>
        </div>
      ) : null}
      <table>
        <caption className="visually-hidden">Users</caption>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">Clearance</th>
            <th scope="col">Active</th>
            <th scope="col">Last sign-in</th>
            <th scope="col">Sessions</th>
          </tr>
        </thead>
        <tbody>
          {items.map((u) => (
            <tr key={u.id}>
              <td>
                {u.full_name || u.username} <small className="muted">{u.email}</small>
              </td>
              <td>
                <select aria-label={`Role of ${u.username}`} value={u.role} disabled={u.id === me.id} onChange={(e) => void change(u, { role: e.target.value }, `role ${e.target.value}`)}>
                  {ROLES.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
              </td>
              <td>
                <select aria-label={`Clearance of ${u.username}`} value={u.clearance} onChange={(e) => void change(u, { clearance: e.target.value }, `clearance ${e.target.value}`)}>
                  {CLEARANCES.map((c) => (
                    <option key={c}>{c}</option>
                  ))}
                </select>
              </td>
              <td>
                <input type="checkbox" aria-label={`${u.username} is active`} checked={u.is_active} disabled={u.id === me.id} onChange={(e) => void change(u, { is_active: e.target.checked }, e.target.checked ? 'activated' : 'deactivated')} />
              </td>
              <td>{formatTime(u.last_login_at)}</td>
              <td>
                <button type="button" className="secondary" onClick={() => void post(`/users/${u.id}/sessions/revoke`).then(() => setMessage(`${u.username}: every session ended.`), setError)}>
                  End sessions
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** `version` changes when MCP servers add or remove tools. */
function Tools({ version }: { version: number }) {
  const list = useLoad((signal) => get<Page<Tool>>('/tools?limit=200', signal), [version]);
  const [error, setError] = useState<unknown>(null);
  const items = list.data?.items ?? [];
  return (
    <>
      <h2>Tools</h2>
      <ErrorMessage error={list.error ?? error} />
      {items.length === 0 && !list.loading ? <Empty>No tools. Register webhook tools through the API (POST /api/v1/tools).</Empty> : null}
      <table>
        <caption className="visually-hidden">Tools</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Kind</th>
            <th scope="col">Needs</th>
            <th scope="col">Approval</th>
            <th scope="col">Enabled</th>
          </tr>
        </thead>
        <tbody>
          {items.map((t) => (
            <tr key={t.id}>
              <td>
                <code>{t.name}</code> <small className="muted">{t.description}</small>
              </td>
              <td>{t.implementation.type}</td>
              <td>{t.required_role}</td>
              <td>{t.requires_approval ? `${t.approvals_required} approver(s)` : 'none'}</td>
              <td>
                <input type="checkbox" aria-label={`${t.name} enabled`} checked={t.is_enabled} disabled={t.implementation.type === 'builtin'} onChange={(e) => void put(`/tools/${t.id}`, { is_enabled: e.target.checked }).then(list.reload, setError)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Anyone's API keys (users:manage): list and revoke; a key is created by its own user, on their Account page. */
function UserKeys({ me }: { me: User }) {
  const users = useLoad((signal) => get<Page<User>>('/users?limit=200', signal), []);
  const [userId, setUserId] = useState(me.id);
  const list = users.data?.items ?? [];
  const owner = list.find((u) => u.id === userId);
  return (
    <>
      <h2>API keys</h2>
      <label>
        Keys of
        <select value={userId} onChange={(e) => setUserId(e.target.value)}>
          {list.map((u) => (
            <option key={u.id} value={u.id}>
              {u.full_name ? `${u.full_name} (${u.username})` : u.username}
            </option>
          ))}
        </select>
      </label>
      <ApiKeys key={userId} userId={userId} ownerName={owner?.username} />
    </>
  );
}

function Models() {
  const list = useLoad((signal) => get<{ items: Model[] } | Model[]>('/llm/models', signal), []);
  const status = useLoad((signal) => get<Record<string, { reachable: boolean; latency_ms: number | null; is_local: boolean }> | { providers: unknown }>('/llm/status', signal), []);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const models = Array.isArray(list.data) ? list.data : (list.data?.items ?? []);
  return (
    <>
      <h2>Models and providers</h2>
      <ErrorMessage error={list.error ?? error} />
      {message ? <p role="status">{message}</p> : null}
      {models.length === 0 && !list.loading ? <Empty>No models found. Configure a provider (OLLAMA_BASE_URL, OPENAI_BASE_URL…) and restart.</Empty> : null}
      <table>
        <caption className="visually-hidden">Models</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Where</th>
            <th scope="col">Context</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.id}>
              <td>
                <code>{m.id}</code>
              </td>
              <td>{m.is_local ? 'local' : 'cloud (redacted prompts)'}</td>
              <td>{m.context_window ?? '—'}</td>
              <td>
                <button type="button" className="secondary" onClick={() => void put('/llm/config', { default_model: m.id }).then(() => setMessage(`${m.id} is the default model.`), setError)}>
                  Make default
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {status.data ? (
        <details>
          <summary>Provider status</summary>
          <pre className="json">{JSON.stringify(status.data, null, 2)}</pre>
        </details>
      ) : null}
    </>
  );
}

export default function Admin({ me }: { me: User }) {
  const [toolsVersion, setToolsVersion] = useState(0);
  return (
    <section>
      <h1>Administration</h1>
      <Users me={me} />
      <Tools version={toolsVersion} />
      <McpServers onToolsChanged={() => setToolsVersion((v) => v + 1)} />
      <Models />
      <RoutingPolicy />
      <UserKeys me={me} />
    </section>
  );
}

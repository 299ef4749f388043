import { useState, type FormEvent } from 'react';
import { del, get, patch, post, type Page } from '../api';
import { Dialog, Empty, ErrorMessage, formatTime, useLoad } from '../ui';

interface McpServer {
  id: string;
  name: string;
  transport: 'streamable_http' | 'stdio';
  url: string | null;
  command: string | null;
  args: string[];
  auth_secret: string | null;
  is_enabled: boolean;
  status: 'ok' | 'error' | 'disabled';
  protocol_version: string | null;
  tool_count: number;
  last_sync_at: string | null;
  error: string | null;
}

/** One argument a line: arguments may contain spaces. */
const argsOf = (text: string) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);

interface Endpoint {
  url: string;
  authSecret: string;
  command: string;
  args: string;
}

function EndpointFields({ transport, value, onChange }: { transport: McpServer['transport']; value: Endpoint; onChange: (value: Endpoint) => void }) {
  const set = (change: Partial<Endpoint>) => onChange({ ...value, ...change });
  return transport === 'streamable_http' ? (
    <>
      <label>
        URL
        <input type="url" value={value.url} onChange={(e) => set({ url: e.target.value })} placeholder="https://mcp.example.org/mcp" required />
      </label>
      <label>
        Bearer token from the vault (secret name, optional)
        <input value={value.authSecret} onChange={(e) => set({ authSecret: e.target.value })} />
      </label>
    </>
  ) : (
    <>
      <label>
        Command (one of MCP_STDIO_COMMANDS)
        <input value={value.command} onChange={(e) => set({ command: e.target.value })} required />
      </label>
      <label>
        Arguments (one a line)
        <textarea value={value.args} onChange={(e) => set({ args: e.target.value })} rows={2} />
      </label>
    </>
  );
}

function Register({ onDone }: { onDone: (server: McpServer) => void }) {
  const [name, setName] = useState('');
  const [transport, setTransport] = useState<McpServer['transport']>('streamable_http');
  const [endpoint, setEndpoint] = useState<Endpoint>({ url: '', authSecret: '', command: '', args: '' });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const body =
        transport === 'streamable_http'
          ? { name, transport, url: endpoint.url, ...(endpoint.authSecret.trim() ? { auth_secret: endpoint.authSecret.trim() } : {}) }
          : { name, transport, command: endpoint.command, args: argsOf(endpoint.args) };
      const server = await post<McpServer>('/mcp/servers', body);
      setName('');
      setEndpoint({ url: '', authSecret: '', command: '', args: '' });
      onDone(server);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form aria-label="Register an MCP server" onSubmit={(e) => void submit(e)}>
      <div className="row">
        <label>
          Server name
          <input value={name} onChange={(e) => setName(e.target.value)} pattern="[A-Za-z][A-Za-z0-9_\-]{0,31}" title="a letter, then up to 31 letters, digits, - and _" required />
        </label>
        <label>
          Transport
          <select value={transport} onChange={(e) => setTransport(e.target.value as McpServer['transport'])}>
            <option value="streamable_http">Streamable HTTP</option>
            <option value="stdio">stdio (a local command)</option>
          </select>
        </label>
        <EndpointFields transport={transport} value={endpoint} onChange={setEndpoint} />
      </div>
      <ErrorMessage error={error} />
      <button type="submit" disabled={busy}>
        {busy ? 'Connecting…' : 'Register and discover tools'}
      </button>
    </form>
  );
}

function Edit({ server, onClose }: { server: McpServer; onClose: (changed: boolean) => void }) {
  const [endpoint, setEndpoint] = useState<Endpoint>({ url: server.url ?? '', authSecret: server.auth_secret ?? '', command: server.command ?? '', args: server.args.join('\n') });
  const [enabled, setEnabled] = useState(server.is_enabled);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function save(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const body =
        server.transport === 'streamable_http'
          ? { url: endpoint.url, auth_secret: endpoint.authSecret.trim() || null, is_enabled: enabled }
          : { command: endpoint.command, args: argsOf(endpoint.args), is_enabled: enabled };
      await patch(`/mcp/servers/${server.id}`, body);
      onClose(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <Dialog title={`Edit the MCP server ${server.name}`} open onClose={() => onClose(false)}>
      <form onSubmit={(e) => void save(e)}>
        <EndpointFields transport={server.transport} value={endpoint} onChange={setEndpoint} />
        <label className="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled (its tools can be called)
        </label>
        <ErrorMessage error={error} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            Save
          </button>
          <button type="button" className="secondary" onClick={() => onClose(false)}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** MCP servers CDSA calls as a client (tools:manage): their tools appear in the tool list as `<server>.<tool>`. */
export function McpServers({ onToolsChanged }: { onToolsChanged: () => void }) {
  const list = useLoad((signal) => get<Page<McpServer>>('/mcp/servers?limit=200', signal), []);
  const [editing, setEditing] = useState<McpServer | null>(null);
  const [removing, setRemoving] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const items = list.data?.items ?? [];

  async function act(id: string, action: () => Promise<string>) {
    setError(null);
    setMessage(null);
    setBusy(id);
    try {
      setMessage(await action());
      list.reload();
      onToolsChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }

  return (
    <>
      <h2>MCP servers</h2>
      <Register
        onDone={(server) => {
          setMessage(server.status === 'ok' ? `${server.name} registered: ${server.tool_count} tools discovered.` : `${server.name} registered, but its sync failed: ${server.error ?? server.status}.`);
          list.reload();
          onToolsChanged();
        }}
      />
      {message ? <p role="status">{message}</p> : null}
      <ErrorMessage error={list.error ?? error} />
      {items.length === 0 && !list.loading ? <Empty>No MCP servers. Register one above; its tools then need approval by default.</Empty> : null}
      {items.length > 0 ? (
        <table>
          <caption className="visually-hidden">MCP servers</caption>
          <thead>
            <tr>
              <th scope="col">Server</th>
              <th scope="col">Endpoint</th>
              <th scope="col">Status</th>
              <th scope="col">Tools</th>
              <th scope="col">Last sync</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-testid="mcp-server">
                <td>
                  <code>{s.name}</code> <small className="muted">{s.transport === 'stdio' ? 'stdio' : 'Streamable HTTP'}</small>
                </td>
                <td>
                  <code>{s.transport === 'stdio' ? [s.command, ...s.args].join(' ') : s.url}</code>
                  {s.auth_secret ? <small className="muted"> token: vault secret {s.auth_secret}</small> : null}
                </td>
                <td>
                  <span className={`badge status-${s.status}`}>{s.status}</span>
                  {s.protocol_version ? <small className="muted"> MCP {s.protocol_version}</small> : null}
                  {s.error ? <span className="error"> {s.error}</span> : null}
                </td>
                <td>{s.tool_count}</td>
                <td>{formatTime(s.last_sync_at)}</td>
                <td>
                  <div className="actions">
                    <button
                      type="button"
                      disabled={busy === s.id}
                      aria-label={`Sync ${s.name}`}
                      onClick={() =>
                        void act(s.id, async () => {
                          const synced = await post<McpServer>(`/mcp/servers/${s.id}/sync`);
                          return synced.status === 'ok' ? `${s.name} synced: ${synced.tool_count} tools.` : `${s.name}: the sync failed: ${synced.error ?? synced.status}.`;
                        })
                      }
                    >
                      {busy === s.id ? 'Syncing…' : 'Sync'}
                    </button>
                    <button type="button" className="secondary" aria-label={`Edit ${s.name}`} onClick={() => setEditing(s)}>
                      Edit…
                    </button>
                    {removing === s.id ? (
                      <button
                        type="button"
                        className="danger"
                        onClick={() =>
                          void act(s.id, async () => {
                            await del(`/mcp/servers/${s.id}`);
                            setRemoving(null);
                            return `${s.name} and its tools are removed.`;
                          })
                        }
                      >
                        Remove {s.name} and its tools
                      </button>
                    ) : (
                      <button type="button" className="secondary" aria-label={`Delete ${s.name}`} onClick={() => setRemoving(s.id)}>
                        Delete…
                      </button>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {editing ? (
        <Edit
          server={editing}
          onClose={(changed) => {
            setEditing(null);
            if (changed) {
              setMessage(`${editing.name} saved.`);
              list.reload();
              onToolsChanged();
            }
          }}
        />
      ) : null}
    </>
  );
}

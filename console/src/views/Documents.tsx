import { useEffect, useRef, useState, type DragEvent } from 'react';
import { ApiError, del, errorMessage, get, hasRole, patch, post, query, upload, type Page, type User } from '../api';
import { onNotification } from '../notifications';
import { useLocation } from '../router';
import { Dialog, Empty, ErrorMessage, formatTime, LabelBadge, Link, useLoad } from '../ui';

const LABELS = ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'];

interface Doc {
  id: string;
  title: string;
  filename: string;
  mime_type: string;
  size_bytes: number;
  label: string;
  tags: string[];
  visibility: string;
  owner_id: string;
  status: string;
  progress: number | null;
  error: string | null;
  chunk_count: number | null;
  page_count: number | null;
  shares: Array<{ id: string; user_id?: string | null; role?: string | null }>;
  created_at: string;
}

interface UploadState {
  name: string;
  fraction: number;
  error?: string;
  done?: boolean;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function Uploader({ onUploaded }: { onUploaded: () => void }) {
  const [uploads, setUploads] = useState<UploadState[]>([]);
  const [label, setLabel] = useState('INTERNAL');
  const [visibility, setVisibility] = useState('private');
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  async function send(files: File[]) {
    const start = uploads.length;
    setUploads((u) => [...u, ...files.map((f) => ({ name: f.name, fraction: 0 }))]);
    await Promise.all(
      files.map(async (file, i) => {
        const form = new FormData();
        form.set('label', label);
        form.set('visibility', visibility);
        form.set('file', file, file.name);
        const set = (s: Partial<UploadState>) => setUploads((u) => u.map((x, j) => (j === start + i ? { ...x, ...s } : x)));
        try {
          await upload('/documents', form, (fraction) => set({ fraction }));
          set({ fraction: 1, done: true });
        } catch (e) {
          set({ error: errorMessage(e) });
        }
      }),
    );
    onUploaded();
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    setOver(false);
    void send([...event.dataTransfer.files]);
  }

  return (
    <div className={over ? 'dropzone over' : 'dropzone'} onDragOver={(e) => { e.preventDefault(); setOver(true); }} onDragLeave={() => setOver(false)} onDrop={onDrop} data-testid="dropzone">
      <p>Drop files here, or choose them. PDF, Word, Excel, CSV, e-mail, HTML and text are read.</p>
      <div className="row">
        <label>
          Label
          <select value={label} onChange={(e) => setLabel(e.target.value)}>
            {LABELS.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <label>
          Visibility
          <select value={visibility} onChange={(e) => setVisibility(e.target.value)}>
            <option value="private">private</option>
            <option value="organization">organization</option>
          </select>
        </label>
        <label className="button">
          Choose files
          <input ref={input} type="file" multiple className="visually-hidden" onChange={(e) => { void send([...(e.target.files ?? [])]); e.target.value = ''; }} />
        </label>
      </div>
      {uploads.length > 0 ? (
        <ul className="uploads">
          {uploads.map((u, i) => (
            <li key={i}>
              {u.name} <progress max={1} value={u.fraction} aria-label={`Upload of ${u.name}`} /> {u.error ? <span className="error">{u.error}</span> : u.done ? 'uploaded' : `${Math.round(u.fraction * 100)}%`}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function ShareDialog({ doc, open, onClose }: { doc: Doc; open: boolean; onClose: () => void }) {
  const [kind, setKind] = useState<'role' | 'user_id'>('role');
  const [value, setValue] = useState('ANALYST');
  const [error, setError] = useState<unknown>(null);
  async function share() {
    setError(null);
    try {
      await post(`/documents/${doc.id}/shares`, kind === 'role' ? { role: value } : { user_id: value });
      onClose();
    } catch (e) {
      setError(e);
    }
  }
  return (
    <Dialog title={`Share “${doc.title}”`} open={open} onClose={onClose}>
      <label>
        Share with
        <select value={kind} onChange={(e) => { setKind(e.target.value as 'role' | 'user_id'); setValue(e.target.value === 'role' ? 'ANALYST' : ''); }}>
          <option value="role">a role</option>
          <option value="user_id">a user (id)</option>
        </select>
      </label>
      {kind === 'role' ? (
        <label>
          Role
          <select value={value} onChange={(e) => setValue(e.target.value)}>
            <option>ANALYST</option>
            <option>MANAGER</option>
            <option>ADMIN</option>
          </select>
        </label>
      ) : (
        <label>
          User id
          <input value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
      )}
      <p className="muted">People see the content only when the label is within their clearance.</p>
      <ErrorMessage error={error} />
      <div className="actions">
        <button type="button" onClick={() => void share()}>
          Share
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}

interface Chunk {
  id: string;
  index: number;
  text: string;
  page: number | null;
  heading_path: string[];
  char_start: number;
  char_end: number;
}

interface AccessEntry {
  event_id: string;
  action: 'searched' | 'retrieved' | 'cited' | 'read' | 'downloaded';
  event_type: string;
  user_id: string | null;
  created_at: string;
}

/** The passage a citation points at: the chunk list is paged through until it turns up. */
async function findChunk(documentId: string, chunkId: string, signal: AbortSignal): Promise<Chunk | null> {
  let cursor: string | null = null;
  for (let page = 0; page < 20; page += 1) {
    const result: Page<Chunk> = await get<Page<Chunk>>(`/documents/${documentId}/chunks${query({ limit: 200, cursor })}`, signal);
    const found = result.items.find((c) => c.id === chunkId);
    if (found) return found;
    if (!result.next_cursor) return null;
    cursor = result.next_cursor;
  }
  return null;
}

/** The extracted text with the cited passage marked, scrolled to. */
function DocumentText({ text, cited }: { text: string; cited: Chunk | null }) {
  const mark = useRef<HTMLElement>(null);
  const inText = cited !== null && cited.char_end > cited.char_start && cited.char_end <= text.length;
  useEffect(() => {
    mark.current?.scrollIntoView({ block: 'center' });
  }, [cited, text]);
  if (!inText) return <pre className="doctext">{text}</pre>;
  return (
    <pre className="doctext">
      {text.slice(0, cited.char_start)}
      <mark ref={mark} id="cited-passage" data-testid="cited-passage">
        {text.slice(cited.char_start, cited.char_end)}
      </mark>
      {text.slice(cited.char_end)}
    </pre>
  );
}

const ACTIONS: Record<AccessEntry['action'], string> = { searched: 'found in a search', retrieved: 'passages retrieved', cited: 'cited in a chat', read: 'content read', downloaded: 'file downloaded' };

/** Who searched, retrieved, cited, read or downloaded the document (its owner, or audit:read). */
function AccessLog({ id, me, after }: { id: string; me: User; after: unknown }) {
  // Loaded again once this viewer's own reads are recorded (`after` changes when they are done).
  const log = useLoad((signal) => get<Page<AccessEntry>>(`/documents/${id}/access-log?limit=50`, signal), [id, after]);
  // Names for administrators (users:manage); everyone else sees "you" or the account id.
  const users = useLoad((signal) => (hasRole(me, 'ADMIN') ? get<Page<User>>('/users?limit=200', signal) : Promise.resolve(null)), [me.role]);
  const names = new Map((users.data?.items ?? []).map((u) => [u.id, u.full_name ? `${u.full_name} (${u.username})` : u.username]));
  const who = (userId: string | null) => (userId === null ? 'system' : userId === me.id ? 'you' : (names.get(userId) ?? userId));
  const items = log.data?.items ?? [];
  return (
    <>
      <h2>Access log</h2>
      <ErrorMessage error={log.error} />
      {items.length === 0 && !log.loading ? <Empty>Nobody has searched, read or cited this document yet.</Empty> : null}
      {items.length > 0 ? (
        <table data-testid="access-log">
          <caption className="visually-hidden">Access log</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.event_id}>
                <td>{formatTime(e.created_at)}</td>
                <td>{who(e.user_id)}</td>
                <td>{ACTIONS[e.action] ?? e.action}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

function DocumentDetail({ id, me }: { id: string; me: User }) {
  const { search } = useLocation();
  const chunkId = search.get('chunk');
  const doc = useLoad((signal) => get<Doc>(`/documents/${id}`, signal), [id]);
  const text = useLoad((signal) => get<{ text: string }>(`/documents/${id}/text`, signal).catch(() => ({ text: '' })), [id, doc.data?.status]);
  const cited = useLoad((signal) => (chunkId ? findChunk(id, chunkId, signal) : Promise.resolve(null)), [id, chunkId]);
  const [sharing, setSharing] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const { reload } = doc;
  const d = doc.data;
  useEffect(() => {
    if (!d || d.status === 'indexed' || d.status === 'failed') return;
    const timer = setInterval(reload, 1500);
    return () => clearInterval(timer);
  }, [d, reload]);

  async function relabel(label: string) {
    setError(null);
    setMessage(null);
    try {
      const result = await patch<Doc | { approval_id: string }>(`/documents/${id}`, { label });
      if ('approval_id' in result) setMessage('Declassification requested: another manager with enough clearance must approve it (see Approvals).');
      else setMessage(`Label set to ${label}.`);
      reload();
    } catch (e) {
      setError(e);
    }
  }

  if (doc.error) return <ErrorMessage error={doc.error} />;
  if (!d) return <p role="status">Loading…</p>;
  return (
    <section>
      <p>
        <Link to="/documents">← All documents</Link>
      </p>
      <h1>
        {d.title} <LabelBadge label={d.label} />
      </h1>
      <p>
        {d.filename} · {size(d.size_bytes)} · {d.visibility} · status <strong data-testid="doc-status">{d.status}</strong>
        {d.progress !== null && d.status !== 'indexed' ? ` (${Math.round((d.progress ?? 0) * 100)}%)` : ''}
      </p>
      {d.error ? <p className="error">{d.error}</p> : null}
      {d.owner_id === me.id ? (
        <div className="row">
          <label>
            Label
            <select value={d.label} onChange={(e) => void relabel(e.target.value)}>
              {LABELS.map((l) => (
                <option key={l}>{l}</option>
              ))}
            </select>
          </label>
          <button type="button" onClick={() => setSharing(true)}>
            Share…
          </button>
          <button type="button" className="secondary" onClick={() => void post(`/documents/${id}/reindex`).then(reload, setError)}>
            Re-index
          </button>
        </div>
      ) : null}
      {message ? <p role="status">{message}</p> : null}
      <ErrorMessage error={error} />
      {d.shares.length > 0 ? (
        <p>
          Shared with:{' '}
          {d.shares.map((s) => (
            <span key={s.id} className="badge">
              {s.role ?? s.user_id}{' '}
              <button type="button" className="link" aria-label={`Stop sharing with ${s.role ?? s.user_id}`} onClick={() => void del(`/documents/${id}/shares/${s.id}`).then(reload, setError)}>
                ×
              </button>
            </span>
          ))}
        </p>
      ) : null}
      {cited.data ? (
        <div className="card" aria-label="Cited passage" role="region">
          <h2>Cited passage</h2>
          <p className="muted">
            Passage {cited.data.index + 1}
            {cited.data.page ? `, page ${cited.data.page}` : ''}
            {cited.data.heading_path.length > 0 ? `, under ${cited.data.heading_path.join(' › ')}` : ''}
          </p>
          <blockquote data-testid="cited-chunk">{cited.data.text}</blockquote>
        </div>
      ) : chunkId && !cited.loading ? (
        <p className="notice warn">The cited passage is no longer in this document (it was re-indexed since).</p>
      ) : null}
      <h2>Extracted text</h2>
      {text.data?.text ? <DocumentText text={text.data.text} cited={cited.data ?? null} /> : <Empty>No text yet. It appears here once the document is extracted.</Empty>}
      {d.owner_id === me.id || hasRole(me, 'MANAGER') ? <AccessLog id={id} me={me} after={`${String(text.loading)}${String(cited.loading)}`} /> : null}
      <ShareDialog doc={d} open={sharing} onClose={() => { setSharing(false); reload(); }} />
    </section>
  );
}

export default function Documents({ me }: { me: User }) {
  const { path } = useLocation();
  const id = path.split('/')[2];
  const [q, setQ] = useState('');
  const list = useLoad((signal) => get<Page<Doc>>(`/documents${query({ q, limit: 100 })}`, signal), [q]);
  const { reload } = list;
  useEffect(() => onNotification((n) => (n.type.startsWith('DOCUMENT') ? reload() : undefined)), [reload]);
  const items = list.data?.items ?? [];
  const busy = items.some((d) => d.status !== 'indexed' && d.status !== 'failed');
  useEffect(() => {
    if (!busy || id) return;
    const timer = setInterval(reload, 1500);
    return () => clearInterval(timer);
  }, [busy, id, reload]);

  if (id) return <DocumentDetail id={id} me={me} />;
  return (
    <section>
      <h1>Documents</h1>
      <Uploader onUploaded={reload} />
      <label>
        Search titles
        <input type="search" value={q} onChange={(e) => setQ(e.target.value)} />
      </label>
      <ErrorMessage error={list.error instanceof ApiError ? list.error : list.error} />
      {items.length === 0 && !list.loading ? <Empty>No documents yet. Upload one above; the chat can then answer from it.</Empty> : null}
      {items.length > 0 ? (
        <table>
          <caption className="visually-hidden">Documents</caption>
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Label</th>
              <th scope="col">Status</th>
              <th scope="col">Size</th>
              <th scope="col">Uploaded</th>
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id}>
                <td>
                  <Link to={`/documents/${d.id}`}>{d.title}</Link>
                </td>
                <td>
                  <LabelBadge label={d.label} />
                </td>
                <td data-testid="status">
                  {d.status}
                  {d.status !== 'indexed' && d.status !== 'failed' && d.progress !== null ? <progress max={1} value={d.progress ?? 0} aria-label={`Indexing ${d.title}`} /> : null}
                </td>
                <td>{size(d.size_bytes)}</td>
                <td>{formatTime(d.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

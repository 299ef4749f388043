import { useEffect, useRef, useState, type DragEvent } from 'react';
import { ApiError, del, errorMessage, get, patch, post, query, upload, type Page, type User } from '../api';
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

function DocumentDetail({ id, me }: { id: string; me: User }) {
  const doc = useLoad((signal) => get<Doc>(`/documents/${id}`, signal), [id]);
  const text = useLoad((signal) => get<{ text: string }>(`/documents/${id}/text`, signal).catch(() => ({ text: '' })), [id, doc.data?.status]);
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
      <h2>Extracted text</h2>
      {text.data?.text ? <pre className="doctext">{text.data.text}</pre> : <Empty>No text yet. It appears here once the document is extracted.</Empty>}
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

import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { get, readEvents, request, type Page, type User } from '../api';
import { renderMarkdown } from '../markdown';
import { onNotification } from '../notifications';
import { navigate } from '../router';
import { Dialog, Empty, ErrorMessage, LabelBadge, Link, useLoad, formatTime } from '../ui';

const ROUTING_REFUSED = 'urn:cdsa:problem:sensitivity-routing-refused';

interface SessionSummary {
  id: string;
  title: string;
  model: string;
  label?: string;
  updated_at: string;
}
interface StoredMessage {
  id: string;
  role: 'user' | 'assistant' | 'tool';
  content: string;
  status?: string;
  model: string | null;
  tool_calls: Array<{ tool_call_id: string; tool: string; args: Record<string, unknown>; approval_id?: string }> | null;
  tool_call_id: string | null;
  tool_name: string | null;
  citations?: Citation[] | null;
  routed_to?: string | null;
}
interface SessionDetail extends SessionSummary {
  pinned_document_ids?: string[];
  messages: StoredMessage[];
}
interface ModelChoice {
  id: string;
  is_local: boolean;
  is_enabled: boolean;
}
interface DocumentChoice {
  id: string;
  title: string;
  label: string;
  status: string;
}
interface Citation {
  n: number;
  document_id: string;
  chunk_id: string;
  title: string;
  page: number | null;
  label: string;
}

type Item =
  | { kind: 'user'; key: string; text: string }
  | { kind: 'assistant'; key: string; text: string; citations: Citation[]; streaming: boolean; model?: string | null }
  | { kind: 'tool_call'; key: string; tool: string; args: unknown; id: string }
  | { kind: 'tool_result'; key: string; tool: string; status: string; result?: unknown; error?: unknown }
  | { kind: 'notice'; key: string; text: string; tone: 'info' | 'warn' | 'error'; routing?: boolean };

interface Pending {
  approvalId: string;
  tool: string;
  args: unknown;
}

let keySeq = 0;
const key = () => `k${++keySeq}`;

function itemsOf(messages: StoredMessage[]): Item[] {
  const items: Item[] = [];
  for (const m of messages) {
    if (m.role === 'user') items.push({ kind: 'user', key: m.id, text: m.content });
    else if (m.role === 'assistant') {
      if (m.routed_to) items.push({ kind: 'notice', key: `${m.id}-r`, text: `Routed to the local model ${m.routed_to}: the session holds content above what cloud models may receive.`, tone: 'info', routing: true });
      if (m.content) items.push({ kind: 'assistant', key: m.id, text: m.content, citations: m.citations ?? [], streaming: false, model: m.model });
      for (const call of m.tool_calls ?? []) items.push({ kind: 'tool_call', key: `${m.id}-${call.tool_call_id}`, tool: call.tool, args: call.args, id: call.tool_call_id });
    } else {
      let outcome: { status?: string; result?: unknown; error?: unknown } = {};
      try {
        outcome = JSON.parse(m.content) as typeof outcome;
      } catch {
        outcome = { status: 'completed', result: m.content };
      }
      items.push({ kind: 'tool_result', key: m.id, tool: m.tool_name ?? 'tool', status: outcome.status ?? 'completed', result: outcome.result, error: outcome.error });
    }
  }
  return items;
}

const citationHref = (c: Citation) => `/documents/${c.document_id}?chunk=${c.chunk_id}`;

/** Citation markers are links inside the console: they go through the router (links the model wrote open apart). */
function onMarkdownClick(event: React.MouseEvent<HTMLDivElement>) {
  const link = (event.target as HTMLElement).closest('a[data-cite]');
  const href = link?.getAttribute('href');
  if (!link || !href?.startsWith('/') || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(href);
}

function Markdown({ text, citations }: { text: string; citations: Citation[] }) {
  // Sanitised HTML from markdown-it with raw HTML disabled (see ../markdown.ts); `[n]` links to source n.
  const html = useMemo(
    () =>
      renderMarkdown(
        text,
        citations.map((c) => ({ n: c.n, href: citationHref(c), title: c.title })),
      ),
    [text, citations],
  );
  return <div className="md" onClick={onMarkdownClick} dangerouslySetInnerHTML={{ __html: html }} />;
}

// Items are replaced, never changed in place: a streamed token re-renders only the answer it belongs to.
const ItemView = memo(function ItemView({ item }: { item: Item }) {
  switch (item.kind) {
    case 'user':
      return (
        <div className="msg user">
          <span className="visually-hidden">You: </span>
          <p>{item.text}</p>
        </div>
      );
    case 'assistant':
      return (
        <div className="msg assistant" aria-busy={item.streaming} data-testid={item.streaming ? 'streaming-answer' : 'answer'}>
          <span className="visually-hidden">Assistant: </span>
          <Markdown text={item.text} citations={item.citations} />
          {item.citations.length > 0 ? (
            <ol className="citations" aria-label="Sources">
              {item.citations.map((c) => (
                <li key={c.n} value={c.n}>
                  <Link to={citationHref(c)}>
                    {c.title}
                    {c.page ? `, page ${c.page}` : ''}
                  </Link>{' '}
                  <LabelBadge label={c.label} />
                </li>
              ))}
            </ol>
          ) : null}
        </div>
      );
    case 'tool_call':
      return (
        <details className="msg tool">
          <summary>
            Tool call: <code>{item.tool}</code>
          </summary>
          <pre className="json">{JSON.stringify(item.args, null, 2)}</pre>
        </details>
      );
    case 'tool_result':
      return (
        <details className={`msg tool ${item.status === 'completed' ? '' : 'warn'}`}>
          <summary>
            Tool result: <code>{item.tool}</code> — {item.status}
          </summary>
          <pre className="json">{JSON.stringify(item.error ?? item.result ?? null, null, 2)}</pre>
        </details>
      );
    case 'notice':
      return (
        <p className={`notice ${item.tone}`} role={item.tone === 'error' ? 'alert' : 'status'} data-testid={item.routing ? 'routing-notice' : undefined}>
          {item.text}
        </p>
      );
  }
});

/** Choose documents the next answers must draw on (grounded chat): they are pinned to the session with the message. */
function DocumentPicker({ open, chosen, fixed, onClose }: { open: boolean; chosen: DocumentChoice[]; fixed: string[]; onClose: (chosen: DocumentChoice[]) => void }) {
  const docs = useLoad((signal) => (open ? get<Page<DocumentChoice>>('/documents?status=indexed&limit=100', signal) : Promise.resolve(null)), [open]);
  const [selected, setSelected] = useState<DocumentChoice[]>(chosen);
  useEffect(() => setSelected(chosen), [open, chosen]);
  const items = (docs.data?.items ?? []).filter((d) => !fixed.includes(d.id));
  const toggle = (d: DocumentChoice, on: boolean) => setSelected(on ? [...selected, d] : selected.filter((x) => x.id !== d.id));
  return (
    <Dialog title="Answer from documents" open={open} onClose={() => onClose(selected)}>
      <ErrorMessage error={docs.error} />
      {items.length === 0 && !docs.loading ? <Empty>No indexed documents to choose. Upload one on the Documents page.</Empty> : null}
      {items.length > 0 ? (
        <fieldset className="picker">
          <legend>Documents the answers must use</legend>
          {items.map((d) => (
            <label key={d.id} className="check">
              <input type="checkbox" checked={selected.some((x) => x.id === d.id)} onChange={(e) => toggle(d, e.target.checked)} /> {d.title} <LabelBadge label={d.label} />
            </label>
          ))}
        </fieldset>
      ) : null}
      <p className="muted">Content above what cloud models may receive sends the chat to the local model, or is refused.</p>
      <div className="actions">
        <button type="button" onClick={() => onClose(selected)}>
          Use these documents
        </button>
      </div>
    </Dialog>
  );
}

export default function Chat({ me }: { me: User }) {
  const sessions = useLoad((signal) => get<Page<SessionSummary>>('/chat/sessions?limit=50', signal), []);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [label, setLabel] = useState<string | null>(null);
  const [items, setItems] = useState<Item[]>([]);
  const [input, setInput] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  // Documents pinned to the open session (fixed), and those chosen for the next message.
  const [pinned, setPinned] = useState<string[]>([]);
  const [chosen, setChosen] = useState<DocumentChoice[]>([]);
  const [picking, setPicking] = useState(false);
  // '' is the session's model (a new chat: the default one); a local model takes content of any label.
  const [model, setModel] = useState('');
  const models = useLoad((signal) => get<Page<ModelChoice>>('/llm/models?limit=200', signal), []);
  const arrivedAt = useRef<number | null>(null);
  const log = useRef<HTMLDivElement>(null);

  useEffect(() => {
    performance.mark('cdsa:chat-interactive');
  }, []);

  // A streamed token reaches the DOM here; the time from its arrival is recorded for the latency budget.
  useLayoutEffect(() => {
    if (arrivedAt.current === null) return;
    performance.measure('cdsa:token-to-dom', { start: arrivedAt.current, end: performance.now() });
    arrivedAt.current = null;
    log.current?.scrollTo({ top: log.current.scrollHeight });
  });

  const openSession = useCallback(async (id: string) => {
    setError(null);
    setPending(null);
    try {
      const detail = await get<SessionDetail>(`/chat/sessions/${id}`);
      setSessionId(id);
      setLabel(detail.label ?? null);
      setPinned(detail.pinned_document_ids ?? []);
      setChosen([]);
      setItems(itemsOf(detail.messages));
      const waiting = detail.messages.flatMap((m) => m.tool_calls ?? []).find((c) => c.approval_id);
      const last = detail.messages[detail.messages.length - 1];
      if (waiting?.approval_id && last?.role === 'assistant' && last.status === 'awaiting_approval') {
        setPending({ approvalId: waiting.approval_id, tool: waiting.tool, args: waiting.args });
      }
    } catch (e) {
      setError(e);
    }
  }, []);

  const itemsRef = useRef<Item[]>(items);
  itemsRef.current = items;
  const { reload: reloadSessions } = sessions;

  /**
   * Streams one turn. The items this turn produces are kept in a local list and the view is set from it after each
   * event, so a token is on screen at the next render whatever arrives after it.
   */
  const run = useCallback(
    async (path: string, body: Record<string, unknown>, prefix: Item[]) => {
      setBusy(true);
      setError(null);
      const base = [...itemsRef.current, ...prefix];
      const turn: Item[] = [];
      let answer = -1;
      let citations: Citation[] = [];
      const show = () => setItems([...base, ...turn]);
      const patchAnswer = (change: Partial<Extract<Item, { kind: 'assistant' }>>) => {
        const current = turn[answer];
        if (current?.kind === 'assistant') turn[answer] = { ...current, ...change };
      };
      show();
      try {
        const response = await request<Response>('POST', path, { body, raw: true });
        for await (const { event, data } of readEvents(response)) {
          const d = data as Record<string, unknown>;
          switch (event) {
            case 'session':
              setSessionId(d.session_id as string);
              break;
            case 'token': {
              arrivedAt.current = performance.now();
              const delta = String(d.delta ?? '');
              const current = turn[answer];
              if (current?.kind === 'assistant') turn[answer] = { ...current, text: current.text + delta };
              else {
                answer = turn.length;
                turn.push({ kind: 'assistant', key: key(), text: delta, citations, streaming: true });
              }
              break;
            }
            case 'citation':
              citations = [...citations, d as unknown as Citation];
              patchAnswer({ citations });
              break;
            case 'routed':
              turn.push({
                kind: 'notice',
                key: key(),
                text: `Routed to the local model ${String(d.to)} instead of ${String(d.from)}: the context is labelled ${String(d.label)}.`,
                tone: 'info',
                routing: true,
              });
              if (d.label) setLabel(String(d.label));
              break;
            case 'tool_call':
              answer = -1;
              turn.push({ kind: 'tool_call', key: key(), tool: String(d.tool), args: d.args, id: String(d.tool_call_id) });
              break;
            case 'tool_result':
              answer = -1;
              turn.push({ kind: 'tool_result', key: key(), tool: String(d.tool), status: String(d.status), result: d.result, error: d.error });
              break;
            case 'approval_required':
              setPending({ approvalId: String(d.approval_id), tool: String(d.tool), args: d.args });
              break;
            case 'message':
              patchAnswer({ streaming: false, model: d.model as string });
              if (typeof d.label === 'string') setLabel(d.label);
              answer = -1;
              break;
            case 'error':
              if (d.type === ROUTING_REFUSED) {
                turn.push({ kind: 'notice', key: key(), text: `Refused, nothing was sent to ${String(d.model ?? 'the model')}: ${String(d.detail ?? '')}`, tone: 'error', routing: true });
                if (typeof d.label === 'string') setLabel(d.label);
              } else turn.push({ kind: 'notice', key: key(), text: String(d.detail || d.title || 'The answer failed.'), tone: 'error' });
              break;
            case 'done':
              if (d.status === 'interrupted') turn.push({ kind: 'notice', key: key(), text: 'The answer was interrupted. Send your message again.', tone: 'warn' });
              break;
          }
          show();
        }
        for (let i = 0; i < turn.length; i++) {
          const item = turn[i];
          if (item.kind === 'assistant' && item.streaming) turn[i] = { ...item, streaming: false };
        }
        show();
        reloadSessions();
        return true;
      } catch (e) {
        setError(e);
        return false;
      } finally {
        setBusy(false);
      }
    },
    [reloadSessions],
  );

  // The approval banner resumes the turn by itself once the approval is decided: on the live notification, and by
  // a slow poll in case the stream is reconnecting.
  useEffect(() => {
    if (!pending || !sessionId) return;
    let done = false;
    const check = async () => {
      if (done) return;
      try {
        const approval = await get<{ status: string }>(`/approvals/${pending.approvalId}`);
        if (approval.status === 'PENDING' || done) return;
        done = true;
        setPending(null);
        const notice: Item = { kind: 'notice', key: key(), text: `Approval ${approval.status.toLowerCase()}: ${pending.tool}. Continuing…`, tone: 'info' };
        await run('/chat/continue', { session_id: sessionId, approval_id: pending.approvalId }, [notice]);
      } catch {
        // the next tick tries again
      }
    };
    const off = onNotification((n) => {
      if (n.type === 'APPROVAL_DECISION' || n.data?.approval_id === pending.approvalId) void check();
    });
    const timer = setInterval(() => void check(), 4000);
    return () => {
      done = true;
      off();
      clearInterval(timer);
    };
  }, [pending, sessionId, run]);

  function send(event?: FormEvent) {
    event?.preventDefault();
    const text = input.trim();
    if (!text || busy) return;
    setInput('');
    const body: Record<string, unknown> = sessionId ? { message: text, session_id: sessionId } : { message: text };
    const choice = chosen;
    if (choice.length > 0) body.document_ids = choice.map((d) => d.id);
    if (model) body.model = model;
    void run('/chat/stream', body, [{ kind: 'user', key: key(), text }]).then((ok) => {
      if (!ok || choice.length === 0) return;
      setPinned((p) => [...new Set([...p, ...choice.map((d) => d.id)])]);
      setChosen((c) => c.filter((d) => !choice.includes(d)));
    });
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  }

  function newChat() {
    setSessionId(null);
    setItems([]);
    setPending(null);
    setLabel(null);
    setPinned([]);
    setChosen([]);
  }

  const list = sessions.data?.items ?? [];
  return (
    <div className="chat">
      <aside className="sessions" aria-label="Chat sessions">
        <button type="button" onClick={newChat}>
          New chat
        </button>
        <ErrorMessage error={sessions.error} />
        {list.length === 0 && !sessions.loading ? <Empty>No chats yet. Ask a question to start one.</Empty> : null}
        <ul>
          {list.map((s) => (
            <li key={s.id}>
              <button type="button" className={s.id === sessionId ? 'session current' : 'session'} aria-current={s.id === sessionId ? 'true' : undefined} onClick={() => void openSession(s.id)}>
                <span>{s.title || 'Untitled chat'}</span>
                <small>{formatTime(s.updated_at)}</small>
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section className="conversation" aria-label="Conversation">
        <header className="conversation-head">
          <h1>Chat</h1>
          {label ? (
            <span>
              Session label <LabelBadge label={label} />
            </span>
          ) : null}
        </header>
        <div className="log" ref={log} aria-live="polite">
          {items.length === 0 ? (
            <Empty>
              Ask about your documents, {me.full_name || me.username}. Answers cite their sources; tools that need approval wait for a manager.
            </Empty>
          ) : null}
          {items.map((item) => (
            <ItemView key={item.key} item={item} />
          ))}
        </div>
        {pending ? (
          <div className="banner" role="status" data-testid="approval-pending">
            Waiting for approval to run <code>{pending.tool}</code>. The chat continues by itself once a manager decides.
            <Link to="/approvals?view=mine">See my requests</Link>
          </div>
        ) : null}
        <ErrorMessage error={error} />
        <div className="pins" aria-label="Documents for the answers" role="group">
          {pinned.length > 0 ? (
            <span className="muted" data-testid="pinned">
              {pinned.length === 1 ? 'One document is pinned to this chat.' : `${pinned.length} documents are pinned to this chat.`}
            </span>
          ) : null}
          {chosen.map((d) => (
            <span key={d.id} className="badge chip" data-testid="chosen-document">
              {d.title}{' '}
              <button type="button" className="link" aria-label={`Do not use ${d.title}`} onClick={() => setChosen(chosen.filter((x) => x.id !== d.id))}>
                ×
              </button>
            </span>
          ))}
          <button type="button" className="secondary" onClick={() => setPicking(true)}>
            Answer from documents…
          </button>
          <label className="inline">
            Model
            <select value={model} onChange={(e) => setModel(e.target.value)}>
              <option value="">{sessionId ? "the chat's model" : 'the default model'}</option>
              {(models.data?.items ?? [])
                .filter((m) => m.is_enabled)
                .map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id} ({m.is_local ? 'local' : 'cloud'})
                  </option>
                ))}
            </select>
          </label>
        </div>
        <DocumentPicker
          open={picking}
          chosen={chosen}
          fixed={pinned}
          onClose={(next) => {
            setPicking(false);
            setChosen(next);
          }}
        />
        <form className="composer" onSubmit={send}>
          <label htmlFor="composer" className="visually-hidden">
            Message
          </label>
          <textarea id="composer" value={input} onChange={(e) => setInput(e.target.value)} onKeyDown={onKeyDown} placeholder="Ask a question (Enter sends, Shift+Enter adds a line)" rows={3} />
          <button type="submit" disabled={busy || !input.trim()}>
            {busy ? 'Answering…' : 'Send'}
          </button>
        </form>
      </section>
    </div>
  );
}

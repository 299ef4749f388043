import { useState } from 'react';
import { errorMessage, get, hasRole, post, query, request, type Page, type User } from '../api';
import { Empty, ErrorMessage, formatTime, Json, useLoad } from '../ui';

interface AuditEvent {
  id: string;
  seq: number;
  event_type: string;
  user_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  details: unknown;
  ip_address: string | null;
  created_at: string;
}
interface Verify {
  valid: boolean;
  checked: number;
  head_seq: number;
  first_invalid_seq: number | null;
}
interface Stats {
  by_type: Record<string, number>;
  by_day: Record<string, number>;
}

/** A bar chart in plain SVG: no chart library, nothing inline that the CSP would refuse. */
function Bars({ title, counts }: { title: string; counts: Record<string, number> }) {
  const entries = Object.entries(counts).sort((a, b) => (title.includes('day') ? a[0].localeCompare(b[0]) : b[1] - a[1])).slice(0, 20);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const row = 18;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {entries.length === 0 ? (
        <p className="muted">No events in this period.</p>
      ) : (
        <svg role="img" aria-label={`${title}: ${entries.map(([k, n]) => `${k} ${n}`).join(', ')}`} width="100%" height={entries.length * row} viewBox={`0 0 400 ${entries.length * row}`}>
          {entries.map(([name, n], i) => (
            <g key={name} transform={`translate(0 ${i * row})`}>
              <text x="0" y="13" fontSize="11" fill="currentColor">
                {name}
              </text>
              <rect x="190" y="3" height="12" width={(n / max) * 170} className="bar" />
              <text x={195 + (n / max) * 170} y="13" fontSize="11" fill="currentColor">
                {n}
              </text>
            </g>
          ))}
        </svg>
      )}
    </figure>
  );
}

function Reports() {
  const [from, setFrom] = useState(() => new Date(Date.now() - 7 * 86400_000).toISOString().slice(0, 10));
  const [to, setTo] = useState(() => new Date(Date.now() + 86400_000).toISOString().slice(0, 10));
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function generate(format: 'json' | 'csv' | 'pdf') {
    setError(null);
    setStatus(`Generating the ${format.toUpperCase()} report…`);
    try {
      const { report_id } = await post<{ report_id: string }>('/audit/report', { from: `${from}T00:00:00.000Z`, to: `${to}T00:00:00.000Z`, format });
      for (let attempt = 0; attempt < 120; attempt++) {
        const response = await request<Response>('GET', `/audit/report/${report_id}`, { raw: true });
        if (response.status === 202) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        const type = response.headers.get('content-type') ?? '';
        const blob = await response.blob();
        if (format !== 'json' && type.includes('application/json')) throw new Error('The report failed; see the audit log for REPORT_GENERATED.');
        const link = document.createElement('a');
        link.href = URL.createObjectURL(blob);
        link.download = `audit-report-${from}-${to}.${format}`;
        link.click();
        URL.revokeObjectURL(link.href);
        setStatus(`The ${format.toUpperCase()} report was downloaded.`);
        return;
      }
      throw new Error('The report is taking too long; try a shorter period.');
    } catch (e) {
      setStatus(null);
      setError(errorMessage(e));
    }
  }

  return (
    <div className="card">
      <h2>Reports</h2>
      <div className="row">
        <label>
          From
          <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          To
          <input type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
        {(['json', 'csv', 'pdf'] as const).map((f) => (
          <button key={f} type="button" onClick={() => void generate(f)}>
            {f.toUpperCase()}
          </button>
        ))}
      </div>
      {status ? <p role="status">{status}</p> : null}
      <ErrorMessage error={error} />
    </div>
  );
}

export default function Audit({ me }: { me: User }) {
  const all = hasRole(me, 'MANAGER');
  const [type, setType] = useState('');
  const [userId, setUserId] = useState('');
  const [cursor, setCursor] = useState<string | null>(null);
  const [verify, setVerify] = useState<Verify | null>(null);
  const [verifyError, setVerifyError] = useState<unknown>(null);
  const events = useLoad((signal) => get<Page<AuditEvent>>(`/audit/events${query({ event_type: type, user_id: userId, limit: 50, cursor })}`, signal), [type, userId, cursor]);
  const stats = useLoad((signal) => (all ? get<Stats>('/audit/stats', signal) : Promise.resolve(null)), [all]);
  const checkpoints = useLoad(
    (signal) => (all ? get<{ key_id: string; items: Array<{ seq: number; hash: string; time: string }> }>('/audit/checkpoints?limit=10', signal) : Promise.resolve(null)),
    [all],
  );
  const [open, setOpen] = useState<string | null>(null);

  async function runVerify() {
    setVerify(null);
    setVerifyError(null);
    try {
      setVerify(await get<Verify>('/audit/verify'));
    } catch (e) {
      setVerifyError(e);
    }
  }

  const items = events.data?.items ?? [];
  return (
    <section>
      <h1>Audit</h1>
      {!all ? <p className="muted">You see your own events. Managers and admins see everyone's.</p> : null}
      {all ? (
        <div className="row">
          <button type="button" onClick={() => void runVerify()}>
            Verify chain
          </button>
          {verify ? (
            <p role="status" className={verify.valid ? 'ok' : 'error'} data-testid="verify-result">
              {verify.valid ? `Chain intact: ${verify.checked} events checked, head at ${verify.head_seq}.` : `Chain broken at event ${verify.first_invalid_seq}.`}
            </p>
          ) : null}
          <ErrorMessage error={verifyError} />
        </div>
      ) : null}
      {all && stats.data ? (
        <div className="charts">
          <Bars title="Events per day" counts={stats.data.by_day} />
          <Bars title="Events per type" counts={stats.data.by_type} />
        </div>
      ) : null}
      {hasRole(me, 'ADMIN') ? <Reports /> : null}
      <h2>Events</h2>
      <form className="row" onSubmit={(e) => e.preventDefault()} aria-label="Filter events">
        <label>
          Event type
          <input value={type} onChange={(e) => { setType(e.target.value.toUpperCase()); setCursor(null); }} placeholder="e.g. LOGIN_SUCCEEDED" />
        </label>
        {all ? (
          <label>
            User id
            <input value={userId} onChange={(e) => { setUserId(e.target.value); setCursor(null); }} />
          </label>
        ) : null}
      </form>
      <ErrorMessage error={events.error} />
      {items.length === 0 && !events.loading ? <Empty>No events match. Clear the filters to see everything.</Empty> : null}
      {items.length > 0 ? (
        <table>
          <caption className="visually-hidden">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">User</th>
              <th scope="col">Resource</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.id}>
                <td>{e.seq}</td>
                <td>{formatTime(e.created_at)}</td>
                <td>
                  <code>{e.event_type}</code>
                </td>
                <td>{e.user_id?.slice(0, 8) ?? '—'}</td>
                <td>{e.resource_type ?? '—'}</td>
                <td>
                  <button type="button" className="link" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>
                    {open === e.id ? 'Hide' : 'Show'}
                  </button>
                  {open === e.id ? <Json value={e.details} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {events.data?.next_cursor ? (
        <button type="button" onClick={() => setCursor(events.data!.next_cursor)}>
          Older events
        </button>
      ) : null}
      {all && checkpoints.data ? (
        <>
          <h2>Signed checkpoints</h2>
          {checkpoints.data.items.length === 0 ? (
            <Empty>No checkpoint yet. Admins can sign one with the CLI or the API.</Empty>
          ) : (
            <ul>
              {checkpoints.data.items.map((c) => (
                <li key={c.seq}>
                  seq {c.seq} at {formatTime(c.time)} — <code>{c.hash.slice(0, 16)}…</code> (key {checkpoints.data!.key_id})
                </li>
              ))}
            </ul>
          )}
        </>
      ) : null}
    </section>
  );
}

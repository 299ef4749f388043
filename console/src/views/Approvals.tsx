import { useEffect, useState } from 'react';
import { ApiError, errorMessage, get, hasRole, post, stepUp, type Page, type User } from '../api';
import { onNotification } from '../notifications';
import { navigate, useLocation } from '../router';
import { Empty, ErrorMessage, formatTime, useLoad } from '../ui';

interface Approval {
  id: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED';
  tool_name: string;
  tool_args: Record<string, unknown>;
  requester_id: string;
  requester?: { username: string; full_name: string | null } | null;
  approvals_required: number;
  decisions: Array<{ approver_id: string; decision: string; reason: string | null; decided_at: string }>;
  requested_at: string;
  expires_at: string;
  session_id: string | null;
}

function Args({ args }: { args: Record<string, unknown> }) {
  const entries = Object.entries(args);
  if (entries.length === 0) return <p className="muted">No arguments.</p>;
  return (
    <dl className="args">
      {entries.map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{typeof value === 'string' ? value : <code>{JSON.stringify(value)}</code>}</dd>
        </div>
      ))}
    </dl>
  );
}

function Quorum({ approval }: { approval: Approval }) {
  const approved = approval.decisions.filter((d) => d.decision === 'APPROVED').length;
  return (
    <span className="quorum">
      <progress max={approval.approvals_required} value={approved} aria-label={`${approved} of ${approval.approvals_required} approvals`} /> {approved} of{' '}
      {approval.approvals_required} approvals
    </span>
  );
}

function requesterName(a: Approval): string {
  if (a.requester) return a.requester.full_name ? `${a.requester.full_name} (${a.requester.username})` : a.requester.username;
  return a.requester_id;
}

function Decide({ approval, onDone }: { approval: Approval; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const [code, setCode] = useState('');
  const [needsCode, setNeedsCode] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function decide(decision: 'APPROVED' | 'REJECTED') {
    setBusy(true);
    setError(null);
    try {
      if (needsCode && code) await stepUp(code);
      await post(`/approvals/${approval.id}/decide`, reason.trim() ? { decision, reason: reason.trim() } : { decision });
      onDone();
    } catch (e) {
      if (e instanceof ApiError && e.problem.type === 'urn:cdsa:problem:step-up-required') {
        setNeedsCode(true);
        setError('This decision needs a fresh code from your authenticator app.');
      } else setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  const id = `reason-${approval.id}`;
  return (
    <div className="decide">
      <label htmlFor={id}>Reason (optional)</label>
      <textarea id={id} value={reason} onChange={(e) => setReason(e.target.value)} rows={2} maxLength={1000} />
      {needsCode ? (
        <label>
          Authenticator code
          <input value={code} onChange={(e) => setCode(e.target.value)} autoComplete="one-time-code" inputMode="numeric" />
        </label>
      ) : null}
      <ErrorMessage error={error} />
      <div className="actions">
        <button type="button" disabled={busy} onClick={() => void decide('APPROVED')}>
          Approve
        </button>
        <button type="button" className="danger" disabled={busy} onClick={() => void decide('REJECTED')}>
          Reject
        </button>
      </div>
    </div>
  );
}

function ApprovalCard({ approval, canDecide, onDone }: { approval: Approval; canDecide: boolean; onDone: () => void }) {
  return (
    <li className="card" data-testid="approval">
      <h3>
        <code>{approval.tool_name}</code> <span className={`badge status-${approval.status.toLowerCase()}`}>{approval.status}</span>
      </h3>
      <p>
        Requested by <strong>{requesterName(approval)}</strong> on {formatTime(approval.requested_at)}; expires {formatTime(approval.expires_at)}.
      </p>
      <Args args={approval.tool_args} />
      <Quorum approval={approval} />
      {approval.decisions.length > 0 ? (
        <ul className="decisions">
          {approval.decisions.map((d) => (
            <li key={d.approver_id + d.decided_at}>
              {d.decision.toLowerCase()} {formatTime(d.decided_at)}
              {d.reason ? `: ${d.reason}` : ''}
            </li>
          ))}
        </ul>
      ) : null}
      {canDecide && approval.status === 'PENDING' ? <Decide approval={approval} onDone={onDone} /> : null}
    </li>
  );
}

export default function Approvals({ me }: { me: User }) {
  const approver = hasRole(me, 'MANAGER');
  const { search } = useLocation();
  const view = search.get('view') === 'mine' || !approver ? 'mine' : 'inbox';
  const list = useLoad(
    (signal) => get<Page<Approval>>(view === 'mine' ? '/approvals/my-requests?limit=100' : '/approvals?status=PENDING&limit=100', signal),
    [view],
  );
  const { reload } = list;
  useEffect(() => onNotification((n) => (n.type.startsWith('APPROVAL') ? reload() : undefined)), [reload]);
  const items = list.data?.items ?? [];

  return (
    <section>
      <h1>Approvals</h1>
      <div role="tablist" aria-label="Approvals" className="tabs">
        {approver ? (
          <button type="button" role="tab" aria-selected={view === 'inbox'} onClick={() => navigate('/approvals')}>
            Inbox
          </button>
        ) : null}
        <button type="button" role="tab" aria-selected={view === 'mine'} onClick={() => navigate('/approvals?view=mine')}>
          My requests
        </button>
      </div>
      <ErrorMessage error={list.error} />
      {items.length === 0 && !list.loading ? (
        <Empty>
          {view === 'inbox'
            ? 'Nothing waits for your decision. New requests appear here and ring the bell.'
            : 'You have not asked for any approval. Gated tools you call from the chat appear here.'}
        </Empty>
      ) : null}
      <ul className="cards">
        {items.map((a) => (
          <ApprovalCard key={a.id} approval={a} canDecide={view === 'inbox' && a.requester_id !== me.id} onDone={reload} />
        ))}
      </ul>
    </section>
  );
}

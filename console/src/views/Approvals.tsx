import { useEffect, useState } from 'react';
import { errorMessage, get, hasRole, post, type Page, type User } from '../api';
import { onNotification } from '../notifications';
import { navigate, useLocation } from '../router';
import { StepUpField, useStepUp } from '../StepUp';
import { Empty, ErrorMessage, formatTime, useLoad } from '../ui';
import { diffArgs, showValue } from './args-diff';

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

/** The most recent earlier request for the same tool (the same requester's first), to compare arguments with. */
function earlierSimilar(approval: Approval, history: Approval[]): Approval | undefined {
  const earlier = history
    .filter((a) => a.id !== approval.id && a.tool_name === approval.tool_name && a.requested_at < approval.requested_at)
    .sort((x, y) => (x.requested_at < y.requested_at ? 1 : -1));
  return earlier.find((a) => a.requester_id === approval.requester_id) ?? earlier[0];
}

function ArgsDiff({ approval, history }: { approval: Approval; history: Approval[] }) {
  const previous = earlierSimilar(approval, history);
  if (!previous) return null;
  const changes = diffArgs(previous.tool_args, approval.tool_args);
  const who = previous.requester_id === approval.requester_id ? 'the same requester' : requesterName(previous);
  const against = `the ${previous.status.toLowerCase()} request by ${who} on ${formatTime(previous.requested_at)}`;
  return (
    <div className="diff" data-testid="args-diff">
      {changes.length === 0 ? (
        <p>Same arguments as {against}.</p>
      ) : (
        <>
          <p>Changed from {against}:</p>
          <ul>
            {changes.map((c) => (
              <li key={c.path}>
                <code>{c.path}</code>{' '}
                {c.kind === 'added' ? (
                  <>
                    added <ins>{showValue(c.after)}</ins>
                  </>
                ) : c.kind === 'removed' ? (
                  <>
                    removed <del>{showValue(c.before)}</del>
                  </>
                ) : (
                  <>
                    <del>{showValue(c.before)}</del> → <ins>{showValue(c.after)}</ins>
                  </>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
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
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const stepUp = useStepUp('This decision');

  async function decide(decision: 'APPROVED' | 'REJECTED') {
    setBusy(true);
    setError(null);
    try {
      await stepUp.guard(() => post(`/approvals/${approval.id}/decide`, reason.trim() ? { decision, reason: reason.trim() } : { decision }));
      onDone();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  }

  const id = `reason-${approval.id}`;
  return (
    <div className="decide">
      <label htmlFor={id}>Reason (optional)</label>
      <textarea id={id} value={reason} onChange={(e) => setReason(e.target.value)} rows={2} maxLength={1000} />
      <StepUpField stepUp={stepUp} />
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

function ApprovalCard({ approval, history, canDecide, onDone }: { approval: Approval; history: Approval[]; canDecide: boolean; onDone: () => void }) {
  return (
    <li className="card" data-testid="approval">
      <h3>
        <code>{approval.tool_name}</code> <span className={`badge status-${approval.status.toLowerCase()}`}>{approval.status}</span>
      </h3>
      <p>
        Requested by <strong>{requesterName(approval)}</strong> on {formatTime(approval.requested_at)}; expires {formatTime(approval.expires_at)}.
      </p>
      <Args args={approval.tool_args} />
      <ArgsDiff approval={approval} history={history} />
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
  // Decided requests the approver may see, to show how a pending call differs from earlier similar ones.
  const decided = useLoad(
    async (signal) =>
      view === 'inbox'
        ? (await Promise.all(['APPROVED', 'REJECTED'].map((status) => get<Page<Approval>>(`/approvals?status=${status}&limit=100`, signal)))).flatMap((p) => p.items)
        : [],
    [view],
  );
  const { reload } = list;
  const { reload: reloadDecided } = decided;
  useEffect(
    () =>
      onNotification((n) => {
        if (!n.type.startsWith('APPROVAL')) return;
        reload();
        reloadDecided();
      }),
    [reload, reloadDecided],
  );
  const items = list.data?.items ?? [];
  const history = [...items, ...(decided.data ?? [])];

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
          <ApprovalCard
            key={a.id}
            approval={a}
            history={history}
            canDecide={view === 'inbox' && a.requester_id !== me.id}
            onDone={() => {
              reload();
              reloadDecided();
            }}
          />
        ))}
      </ul>
    </section>
  );
}

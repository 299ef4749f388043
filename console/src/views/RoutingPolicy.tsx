import { get, query, type Page } from '../api';
import { Empty, ErrorMessage, formatTime, LabelBadge, useLoad } from '../ui';

interface Model {
  id: string;
  is_local: boolean;
  is_enabled: boolean;
}
interface LlmConfig {
  default_model: string | null;
  redaction: { redact_types: string[] };
  model_access: Record<string, string[]>;
  routing: { cloud_max_label: string; local_fallback_model: string | null };
}
interface RoutedEvent {
  id: string;
  created_at: string;
  details: { action?: string; label?: string; from?: string; to?: string | null; reason?: string; cloud_max_label?: string };
}

/**
 * The sensitivity routing policy, read-only: CLOUD_MAX_LABEL and LOCAL_FALLBACK_MODEL are set in the environment
 * (GET /llm/config reports them), with the LLM_ROUTED audit events of the turns they applied to.
 */
export function RoutingPolicy() {
  const models = useLoad((signal) => get<Page<Model>>('/llm/models?limit=200', signal), []);
  const config = useLoad((signal) => get<LlmConfig>('/llm/config', signal), []);
  const routed = useLoad((signal) => get<Page<RoutedEvent>>(`/audit/events${query({ event_type: 'LLM_ROUTED', limit: 10 })}`, signal), []);
  const enabled = (models.data?.items ?? []).filter((m) => m.is_enabled);
  const local = enabled.filter((m) => m.is_local);
  const cloud = enabled.filter((m) => !m.is_local);
  const events = routed.data?.items ?? [];
  const routing = config.data?.routing;
  const access = Object.entries(config.data?.model_access ?? {});

  return (
    <>
      <h2>Routing policy</h2>
      <ErrorMessage error={models.error ?? config.error ?? routed.error} />
      <dl className="args" data-testid="routing-policy">
        <div>
          <dt>Cloud bound (CLOUD_MAX_LABEL)</dt>
          <dd>
            {routing ? <LabelBadge label={routing.cloud_max_label} /> : '…'}. Content above it never reaches a cloud model; RESTRICTED content never does.
          </dd>
        </div>
        <div>
          <dt>Local fallback (LOCAL_FALLBACK_MODEL)</dt>
          <dd>{routing?.local_fallback_model ? <code>{routing.local_fallback_model}</code> : 'none: a turn above the bound is refused'}</dd>
        </div>
        <div>
          <dt>Local models (any label)</dt>
          <dd>{local.length > 0 ? local.map((m) => m.id).join(', ') : 'none'}</dd>
        </div>
        <div>
          <dt>Cloud models</dt>
          <dd>
            {cloud.length > 0 ? cloud.map((m) => m.id).join(', ') : 'none'}
            {config.data && config.data.redaction.redact_types.length > 0 ? ` (prompts redacted: ${config.data.redaction.redact_types.join(', ')})` : ''}
          </dd>
        </div>
        <div>
          <dt>Default model</dt>
          <dd>{config.data?.default_model ?? 'LLM_DEFAULT_MODEL, else the first available'}</dd>
        </div>
        <div>
          <dt>Model access by role</dt>
          <dd data-testid="model-access">
            {access.length === 0
              ? 'Every role may use every enabled model.'
              : access.map(([model, roles]) => `${model}: ${roles.length > 0 ? roles.join(', ') : 'no role'}`).join('; ') + '. Models not named are open to every role.'}{' '}
            Set by admins in the LLM configuration (llm:configure).
          </dd>
        </div>
      </dl>
      <h3>Recent routing decisions</h3>
      {events.length === 0 && !routed.loading ? <Empty>No turn has been routed or refused yet.</Empty> : null}
      {events.length > 0 ? (
        <ul className="routed">
          {events.map((e) => (
            <li key={e.id}>
              {formatTime(e.created_at)}: <strong>{e.details.action === 'route' ? 'routed' : 'refused'}</strong> <LabelBadge label={e.details.label} /> {e.details.from}
              {e.details.to ? ` → ${e.details.to}` : ''} <small className="muted">{e.details.reason}</small>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}

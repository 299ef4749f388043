import { labelAtMost, labelRank, type Label } from '../../lib/labels.js';

/**
 * Sensitivity-aware routing: which content may reach which model. Pure, no I/O; the chat turn, embeddings and the
 * OpenAI-compatible endpoint all ask these two functions, so there is one rule.
 *
 * - A local model (on-premises: Ollama, or an OpenAI-compatible server marked OPENAI_LOCAL) may receive anything the
 *   caller may read; clearance already decided what entered the context.
 * - A cloud model receives content labelled at most CLOUD_MAX_LABEL, and never RESTRICTED content, whatever the
 *   configuration says (the bound is clamped here as well as refused at start-up).
 */

/** The labels CLOUD_MAX_LABEL may take: RESTRICTED content never goes to a cloud provider. */
export const CLOUD_MAX_LABELS = ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL'] as const;
export type CloudMaxLabel = (typeof CLOUD_MAX_LABELS)[number];
export const DEFAULT_CLOUD_MAX_LABEL: CloudMaxLabel = 'INTERNAL';

export function isCloudMaxLabel(value: unknown): value is CloudMaxLabel {
  return typeof value === 'string' && (CLOUD_MAX_LABELS as readonly string[]).includes(value);
}

/** The bound actually applied: anything above CONFIDENTIAL (a value that bypassed config validation) counts as CONFIDENTIAL. */
function clampCloudMax(cloudMaxLabel: Label): Label {
  return labelRank(cloudMaxLabel) > labelRank('CONFIDENTIAL') ? 'CONFIDENTIAL' : cloudMaxLabel;
}

/** Whether content labelled `label` may be sent to a provider (`isLocal` as the llm service reports it). */
export function labelMayReachProvider(label: Label, provider: { isLocal: boolean }, cloudMaxLabel: Label): boolean {
  if (provider.isLocal) return true;
  return labelAtMost(label, clampCloudMax(cloudMaxLabel));
}

export type RoutingCode =
  /** The target is local: it may see anything. */
  | 'local_model'
  /** The content is within the cloud bound. */
  | 'within_cloud_max'
  /** Above the bound, sent to the local fallback instead. */
  | 'above_cloud_max'
  /** Above the bound and no LOCAL_FALLBACK_MODEL is configured. */
  | 'no_fallback'
  /** Above the bound and the fallback cannot take it now (not reachable, disabled, or not local). */
  | 'fallback_unavailable';

export interface RoutingInput {
  /** The highest label of any content the turn would send (the session's label). */
  label: Label;
  /** The model the turn would run on. */
  target: { id: string; isLocal: boolean };
  cloudMaxLabel: Label;
  /** LOCAL_FALLBACK_MODEL as resolved now; undefined when none is configured. */
  fallback: { id: string; isLocal: boolean; available: boolean } | undefined;
}

export type RoutingDecision =
  | { action: 'send'; code: 'local_model' | 'within_cloud_max'; reason: string }
  | { action: 'route'; to: string; code: 'above_cloud_max'; reason: string }
  | { action: 'refuse'; code: 'no_fallback' | 'fallback_unavailable'; reason: string };

/**
 * Where a turn goes: as asked (`send`), to the local fallback (`route`), or nowhere (`refuse`, before anything
 * leaves). `reason` names the label and the policy, for the stream, the problem detail and the audit event.
 */
export function decideRouting(input: RoutingInput): RoutingDecision {
  const { label, target, fallback } = input;
  const bound = clampCloudMax(input.cloudMaxLabel);
  if (target.isLocal) {
    return { action: 'send', code: 'local_model', reason: `${target.id} is a local model` };
  }
  if (labelAtMost(label, bound)) {
    return { action: 'send', code: 'within_cloud_max', reason: `${label} content is within CLOUD_MAX_LABEL=${bound}` };
  }
  const above =
    label === 'RESTRICTED'
      ? `RESTRICTED content never goes to a cloud model (${target.id})`
      : `${label} content is above CLOUD_MAX_LABEL=${bound} for the cloud model ${target.id}`;
  if (fallback === undefined) {
    return { action: 'refuse', code: 'no_fallback', reason: `${above}, and no LOCAL_FALLBACK_MODEL is configured` };
  }
  if (!fallback.isLocal) {
    return { action: 'refuse', code: 'fallback_unavailable', reason: `${above}, and LOCAL_FALLBACK_MODEL ${fallback.id} is not a local model` };
  }
  if (!fallback.available) {
    return { action: 'refuse', code: 'fallback_unavailable', reason: `${above}, and LOCAL_FALLBACK_MODEL ${fallback.id} is not available` };
  }
  return { action: 'route', to: fallback.id, code: 'above_cloud_max', reason: `${above}: sent to the local model ${fallback.id}` };
}

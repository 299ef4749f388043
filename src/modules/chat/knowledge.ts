import { AppError, NotFoundError } from '../../lib/errors.js';
import { higherLabel, type Label } from '../../lib/labels.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import { labelMayReachProvider, type RoutingDecision } from '../llm/sensitivity-routing.js';
import type { SourceChunk } from './grounding.js';

/**
 * What chat needs from the documents module to ground a turn. Both calls apply the caller's own clearance, shares and
 * visibility (the documents policy), and both record the access in the audit trail.
 */
export interface KnowledgeSource {
  /** The first passages of one document, for pinned context; NotFoundError when the caller may not read it. */
  documentPassages(actor: Actor, documentId: string, options: { limit: number }, context: RequestContext): Promise<SourceChunk[]>;
  /** Records that an answer cited these passages (the document's access log shows it). */
  recordCitations?(actor: Actor, passages: readonly { chunk_id: string; document_id: string }[], context: RequestContext): Promise<void>;
}

/** Most documents one session may pin. */
export const MAX_PINNED_DOCUMENTS = 20;
/** Most passages read per pinned document (what fits of them in the prompt is decided later). */
export const PINNED_PASSAGES_PER_DOCUMENT = 50;
/** The name of the built-in retrieval tool offered with `knowledge: "auto"`. */
export const SEARCH_DOCUMENTS_TOOL = 'search_documents';

export interface PinnedContext {
  /** The documents pinned to the session after this turn (earlier ones first). */
  documentIds: string[];
  /** Their passages, in document order. */
  passages: SourceChunk[];
  /** The highest label of those passages (PUBLIC when there are none). */
  label: Label;
}

/**
 * The pinned context of a turn: the session's pinned documents plus the ones this request adds. A document this
 * request names that the caller may not read is a 404 (before anything is stored or sent); one pinned earlier that
 * the caller may no longer read (unshared, relabelled above their clearance, deleted) silently drops out.
 */
export async function loadPinnedContext(
  source: KnowledgeSource,
  actor: Actor,
  input: { sessionPinned: readonly string[]; requested: readonly string[] },
  context: RequestContext,
): Promise<PinnedContext> {
  const requested = [...new Set(input.requested)];
  const ids = [...new Set([...input.sessionPinned, ...requested])];
  if (ids.length > MAX_PINNED_DOCUMENTS) {
    throw new PinnedLimitError(MAX_PINNED_DOCUMENTS);
  }
  const wanted = new Set(requested);
  const loaded = await Promise.all(
    ids.map(async (id) => {
      try {
        return { id, passages: await source.documentPassages(actor, id, { limit: PINNED_PASSAGES_PER_DOCUMENT }, context) };
      } catch (error) {
        if (error instanceof NotFoundError && !wanted.has(id)) return { id, passages: null };
        throw error;
      }
    }),
  );
  const kept = loaded.filter((entry): entry is { id: string; passages: SourceChunk[] } => entry.passages !== null);
  const passages = kept.flatMap((entry) => entry.passages);
  return {
    documentIds: kept.map((entry) => entry.id),
    passages,
    label: passages.reduce<Label>((max, passage) => higherLabel(max, passage.label), 'PUBLIC'),
  };
}

export class PinnedLimitError extends AppError {
  readonly status = 422;
  readonly title = 'Unprocessable Content';
  constructor(max: number) {
    super(`A chat session can pin at most ${max} documents`);
    this.extensions.errors = [{ pointer: '/document_ids', detail: `at most ${max} documents per session` }];
  }
}

/**
 * 403 `urn:cdsa:problem:sensitivity-routing-refused`: the turn's context is above what the chosen (cloud) model may
 * receive and no local fallback can take it. Sent as the stream's `error` before anything leaves.
 */
export class RoutingRefusedError extends AppError {
  readonly status = 403;
  readonly title = 'Sensitivity Routing Refused';
  constructor(decision: Extract<RoutingDecision, { action: 'refuse' }>, facts: { label: Label; model: string; cloudMaxLabel: Label }) {
    super(`This conversation holds ${facts.label} content: ${decision.reason}. Choose a local model, or ask an administrator about LOCAL_FALLBACK_MODEL.`);
    this.extensions.label = facts.label;
    this.extensions.model = facts.model;
    this.extensions.cloud_max_label = facts.cloudMaxLabel;
    this.extensions.policy = 'CLOUD_MAX_LABEL';
    this.extensions.reason = decision.code;
  }
}

/**
 * Search hits a model may see: for a cloud model, only those within CLOUD_MAX_LABEL (the others are withheld and
 * counted); for a local model, all of them.
 */
export function hitsForModel<T extends { label: Label }>(hits: readonly T[], model: { isLocal: boolean }, cloudMaxLabel: Label): { allowed: T[]; withheld: number } {
  const allowed = hits.filter((hit) => labelMayReachProvider(hit.label, model, cloudMaxLabel));
  return { allowed, withheld: hits.length - allowed.length };
}

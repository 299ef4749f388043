import { higherLabel, type Label } from '../../lib/labels.js';
import type { AuditEventInput } from '../audit/audit.service.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import type { LlmService, ResolvedModel } from '../llm/llm.service.js';
import { decideRouting, type RoutingDecision } from '../llm/sensitivity-routing.js';
import type { ToolResultPayload } from './chat.context.js';
import {
  citedNumbers,
  createSourceRegistry,
  fitSources,
  groundingInstructions,
  highestLabel,
  newBoundary,
  pinnedSection,
  renderSources,
  type Citation,
  type SourceChunk,
  type SourceRegistry,
} from './grounding.js';
import { hitsForModel, loadPinnedContext, RoutingRefusedError, SEARCH_DOCUMENTS_TOOL, type KnowledgeSource } from './knowledge.js';

/**
 * One turn's grounding, prepared before the stream opens: the pinned passages that fit, the session's label after
 * them, where the turn goes (the model asked for, the local fallback, or nowhere) and the events that announce it.
 * While the turn runs, it numbers search hits as they come back and keeps the turn's citations.
 */
export interface TurnGrounding {
  /** The model the turn runs on (the local fallback when routed). */
  model: ResolvedModel;
  decision: RoutingDecision;
  /** Set when the turn must not call any model: the stream sends it as `error`, then `done {status: "error"}`. */
  refusal: RoutingRefusedError | undefined;
  /** The session's label once this turn's pinned content entered it. */
  label: Label;
  /** Documents pinned to the session after this turn. */
  pinnedDocumentIds: string[];
  /** Added to the system prompt (instructions and the pinned passages), empty when the turn has no knowledge. */
  systemText: string;
  /** Whether the model is offered `search_documents`. */
  canSearch: boolean;
  /** `routed` and the pinned passages' `citation` events, sent right after `session`. */
  opening: Array<{ type: 'routed'; from: string; to: string; label: Label; reason: string } | ({ type: 'citation' } & Citation)>;
  /** Set when routing was decided (routed or refused): the LLM_ROUTED audit event, written with the turn's USER_QUERY. */
  audit: Omit<AuditEventInput, 'userId' | 'sessionId' | 'context' | 'resourceType' | 'resourceId'> | undefined;
  /** The model the turn was routed to, else null (stored on its messages). */
  routedTo: string | null;
  /** Every citation of the turn so far. */
  citations(): Citation[];
  /**
   * A tool outcome as the model will see it: a `search_documents` result becomes numbered, delimited passages (hits
   * above what the model may receive withheld), with the citations it adds and the label they bring.
   */
  toolResult(tool: string, payload: ToolResultPayload): { payload: ToolResultPayload; citations: Citation[]; label: Label | null };
  /**
   * Records, in the documents' access log (`DOCUMENT_ACCESSED` `cited`), the passages an answer cites: the numbers in
   * `text` that stand for a passage of this session. Returns those citations.
   */
  recordCited?(text: string): Promise<Citation[]>;
}

export interface GroundingDeps {
  knowledge: () => KnowledgeSource | undefined;
  llm: Pick<LlmService, 'resolveModel' | 'modelAvailable'>;
  cloudMaxLabel: Label;
  localFallbackModel: string | undefined;
}

export interface GroundingInput {
  model: ResolvedModel;
  /** The session's label and pinned documents so far (a new session: PUBLIC and none). */
  sessionLabel: Label;
  sessionPinned: readonly string[];
  /** Documents this request pins. */
  requested: readonly string[];
  /** The model is offered search_documents (`knowledge: "auto"` and the tool is there for this user). */
  canSearch: boolean;
  /**
   * The session's citations from earlier turns: a passage that enters again keeps its number, new ones are numbered
   * after them, so `[n]` means one passage for the whole session. None: numbering starts at 1.
   */
  earlierCitations?: readonly Citation[];
  /** Tokens the pinned passages may take of the prompt of the model the turn runs on. */
  sourceBudget: (model: ResolvedModel) => number;
  countTokens: (text: string) => number;
}

/** The shape of a search hit inside a `search_documents` result (what the built-in returns). */
interface SearchHitResult {
  chunk_id: string;
  document_id: string;
  document_title: string;
  label: Label;
  page: number | null;
  heading_path?: string[];
  text: string;
}

function isHitList(value: unknown): value is SearchHitResult[] {
  return (
    Array.isArray(value) &&
    value.every((hit) => typeof hit === 'object' && hit !== null && typeof (hit as SearchHitResult).chunk_id === 'string' && typeof (hit as SearchHitResult).text === 'string')
  );
}

export function createGrounding(deps: GroundingDeps) {
  async function fallbackFor(model: ResolvedModel, label: Label): Promise<{ id: string; isLocal: boolean; available: boolean } | undefined> {
    const id = deps.localFallbackModel;
    if (id === undefined) return undefined;
    // Only looked up when it matters: a turn within the bound never waits on the fallback's provider.
    if (decideRouting({ label, target: model, cloudMaxLabel: deps.cloudMaxLabel, fallback: undefined }).action === 'send') {
      return { id, isLocal: true, available: true };
    }
    try {
      const resolved = await deps.llm.resolveModel(id);
      return { id: resolved.id, isLocal: resolved.isLocal, available: resolved.isLocal && (await deps.llm.modelAvailable(resolved.id)) };
    } catch {
      return { id, isLocal: true, available: false };
    }
  }

  return {
    /**
     * Everything decided before the stream opens. Throws NotFoundError (404) for a requested document the caller may
     * not read, before anything is stored or sent.
     */
    async prepare(actor: Actor, input: GroundingInput, context: RequestContext): Promise<TurnGrounding> {
      const source = deps.knowledge();
      const wantsPinned = input.requested.length > 0 || input.sessionPinned.length > 0;
      const pinned =
        wantsPinned && source
          ? await loadPinnedContext(source, actor, { sessionPinned: input.sessionPinned, requested: input.requested }, context)
          : { documentIds: [...input.sessionPinned], passages: [] as SourceChunk[], label: 'PUBLIC' as Label };
      const registry: SourceRegistry = createSourceRegistry(input.earlierCitations ?? []);
      // Every pinned passage counts, even one that will not fit in this prompt (it may in the next, on another model),
      // and so does what entered before: the session's label only rises.
      const label = higherLabel(input.sessionLabel, pinned.label);
      const fallback = await fallbackFor(input.model, label);
      const decision = decideRouting({ label, target: input.model, cloudMaxLabel: deps.cloudMaxLabel, fallback });
      let model = input.model;
      let refusal: RoutingRefusedError | undefined;
      if (decision.action === 'route') model = await deps.llm.resolveModel(decision.to);
      if (decision.action === 'refuse') refusal = new RoutingRefusedError(decision, { label, model: input.model.id, cloudMaxLabel: deps.cloudMaxLabel });

      const canSearch = input.canSearch;
      const boundary = newBoundary();
      const fitted = refusal ? [] : fitSources(pinned.passages, input.sourceBudget(model), input.countTokens).kept;
      const { sources } = registry.add(fitted);
      const systemText = sources.length > 0 || canSearch ? groundingInstructions(boundary, { canSearch }) + pinnedSection(sources, boundary) : '';
      const opening: TurnGrounding['opening'] = [];
      if (decision.action === 'route') {
        opening.push({ type: 'routed', from: input.model.id, to: model.id, label, reason: decision.reason });
      }
      if (!refusal) for (const citation of registry.citations()) opening.push({ type: 'citation', ...citation });
      const audit: TurnGrounding['audit'] =
        decision.action === 'send'
          ? undefined
          : {
              eventType: 'LLM_ROUTED',
              details: {
                action: decision.action,
                label,
                from: input.model.id,
                to: decision.action === 'route' ? model.id : null,
                reason: decision.reason,
                code: decision.code,
                cloud_max_label: deps.cloudMaxLabel,
              },
            };
      let current = label;

      return {
        model,
        decision,
        refusal,
        get label() {
          return current;
        },
        pinnedDocumentIds: pinned.documentIds,
        systemText,
        canSearch,
        opening,
        audit,
        routedTo: decision.action === 'route' ? model.id : null,
        citations: () => registry.citations(),
        async recordCited(text) {
          const cited = citedNumbers(text).flatMap((n) => registry.lookup(n) ?? []);
          if (cited.length > 0 && source?.recordCitations) await source.recordCitations(actor, cited, context);
          return cited;
        },
        toolResult(tool, payload) {
          if (tool !== SEARCH_DOCUMENTS_TOOL || payload.status !== 'completed') return { payload, citations: [], label: null };
          const result = payload.result as { results?: unknown } | null;
          const hits = result && typeof result === 'object' && isHitList(result.results) ? result.results : [];
          const { allowed, withheld } = hitsForModel(hits, model, deps.cloudMaxLabel);
          const { sources: found, added } = registry.add(
            allowed.map((hit) => ({
              document_id: hit.document_id,
              chunk_id: hit.chunk_id,
              title: hit.document_title,
              page: hit.page,
              label: hit.label,
              heading_path: hit.heading_path ?? [],
              text: hit.text,
            })),
          );
          const entered = found.length > 0 ? highestLabel(found) : null;
          if (entered) current = higherLabel(current, entered);
          const rendered: Record<string, unknown> = {
            passages: found.length === 0 ? 'No passages found.' : renderSources(found, boundary),
            count: found.length,
          };
          if (withheld > 0) {
            rendered.withheld = `${withheld} more passages are labelled above CLOUD_MAX_LABEL=${deps.cloudMaxLabel} and were not given to this cloud model`;
          }
          return {
            payload: { status: 'completed', result: rendered },
            citations: added.map((source) => registry.citations().find((c) => c.n === source.n)!),
            label: entered,
          };
        },
      };
    },
  };
}

export type Grounding = ReturnType<typeof createGrounding>;

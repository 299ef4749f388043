import { AppError } from '../../lib/errors.js';
import { PII_TYPES, type PiiType } from './types.js';

/**
 * What the redactor does with each type: which types are replaced before text goes to a cloud model, and which
 * types, when found in a document, raise its classification label (the documents module's auto-classification).
 */
export interface RedactionPolicy {
  /** Types replaced by placeholders for non-local models. */
  readonly redactTypes: readonly PiiType[];
  /** Types whose presence in a document raises its label. */
  readonly labelTypes: readonly PiiType[];
  /** Longest a detection may take per 32 KiB of text; past it the text is refused, never sent unredacted. */
  readonly timeBudgetMs: number;
}

export const DEFAULT_TIME_BUDGET_MS = 250;

export const DEFAULT_REDACTION_POLICY: RedactionPolicy = Object.freeze({
  redactTypes: PII_TYPES,
  labelTypes: PII_TYPES,
  timeBudgetMs: DEFAULT_TIME_BUDGET_MS,
});

const TYPE_SET: ReadonlySet<string> = new Set(PII_TYPES);

/** Parses a comma-separated type list ("all" = every type); throws a message naming the unknown types. */
export function parsePiiTypeList(raw: string): PiiType[] {
  const items = raw
    .split(',')
    .map((item) => item.trim().toUpperCase())
    .filter((item) => item !== '');
  if (items.length === 1 && items[0] === 'ALL') return [...PII_TYPES];
  if (items.length === 1 && items[0] === 'NONE') return [];
  const unknown = items.filter((item) => !TYPE_SET.has(item));
  if (unknown.length > 0) throw new RangeError(`unknown type(s) ${unknown.join(', ')}; known: ${PII_TYPES.join(', ')}, or all / none`);
  // In the canonical order, each once.
  return PII_TYPES.filter((t) => items.includes(t));
}

/**
 * Whether any of the detected types raises a document's label under `policy`. The documents module calls this with
 * the types `detectPii` found in a document's text.
 */
export function raisesDocumentLabel(types: Iterable<PiiType>, policy: RedactionPolicy = DEFAULT_REDACTION_POLICY): boolean {
  const raising = new Set(policy.labelTypes);
  for (const t of types) if (raising.has(t)) return true;
  return false;
}

/** The types of `found` that raise a document's label, each once, in canonical order. */
export function labelRaisingTypes(found: Iterable<{ type: PiiType }>, policy: RedactionPolicy = DEFAULT_REDACTION_POLICY): PiiType[] {
  const seen = new Set<PiiType>();
  for (const e of found) seen.add(e.type);
  return policy.labelTypes.filter((t) => seen.has(t));
}

/**
 * Detection failed or ran out of time: the text is not sent to the cloud model at all. 503, as for an upstream that
 * is unavailable: the request may succeed later, or with a local model.
 */
export class RedactionFailedError extends AppError {
  readonly status = 503;
  readonly title = 'Redaction Failed';
  constructor(
    readonly reason: 'timeout' | 'error',
    options?: { cause?: unknown },
  ) {
    super(
      reason === 'timeout'
        ? 'Personal data detection exceeded its time budget, so the text was not sent to the cloud model; use a local model or shorten the text'
        : 'Personal data detection failed, so the text was not sent to the cloud model; use a local model or try again',
    );
    this.extensions.reason = reason;
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

import { performance } from 'node:perf_hooks';
import { detectPii, PII_TYPES } from './detectors.js';
import type { PiiEntity, PiiType } from './detectors.js';
import { loadEntityData, surnameOf } from './entities.js';
import { LruMap } from '../../lib/lru-map.js';
import { DEFAULT_REDACTION_POLICY, RedactionFailedError, type RedactionPolicy } from './policy.js';

/** An entity as reported to callers: where it was, never what it was. */
export interface RedactedEntity {
  type: PiiType;
  start: number;
  end: number;
}

export interface RedactTextResult {
  redacted_text: string;
  entities: RedactedEntity[];
}

export type PiiCounts = Partial<Record<PiiType, number>>;

export interface VaultRedaction {
  text: string;
  /** Occurrences replaced in this call, per type (types with none are absent). */
  counts: PiiCounts;
  /** Offsets into the input text. */
  entities: RedactedEntity[];
}

export interface VaultEntry {
  placeholder: string;
  type: PiiType;
  value: string;
}

/** Persistable form of a vault; it holds the original values, so store it encrypted. */
export interface VaultSnapshot {
  version: 1;
  entries: VaultEntry[];
}

const TYPE_SET: ReadonlySet<string> = new Set(PII_TYPES);
const PLACEHOLDER = new RegExp(`\\[(?:${PII_TYPES.join('|')})_[1-9]\\d{0,8}\\]`, 'g');
const LONGEST_TYPE = Math.max(...PII_TYPES.map((t) => t.length));

/**
 * The same card, IBAN or phone written with different spacing, or an address in another
 * letter case, is the same value and gets the same placeholder.
 */
function identityKey(type: PiiType, value: string): string {
  switch (type) {
    case 'CREDIT_CARD':
    case 'SSN':
      return `${type}:${value.replace(/\D/g, '')}`;
    case 'PHONE':
      return `${type}:${value.replace(/[^\d+]/g, '')}`;
    case 'IBAN':
      return `${type}:${value.replace(/\s/g, '').toUpperCase()}`;
    case 'EMAIL':
    case 'IP_ADDRESS':
      return `${type}:${value.toLowerCase()}`;
    case 'PERSON':
    case 'LOCATION':
    case 'ORGANIZATION':
      return `${type}:${value.replace(/\s+/g, ' ').toLowerCase()}`;
    default:
      return `${type}:${value}`;
  }
}

function replaceEntities(
  text: string,
  found: readonly PiiEntity[],
  placeholderFor: (e: PiiEntity) => string,
): { text: string; entities: RedactedEntity[]; counts: PiiCounts } {
  const counts: PiiCounts = {};
  const entities: RedactedEntity[] = [];
  let out = '';
  let last = 0;
  for (const e of found) {
    out += text.slice(last, e.start) + placeholderFor(e);
    last = e.end;
    entities.push({ type: e.type, start: e.start, end: e.end });
    counts[e.type] = (counts[e.type] ?? 0) + 1;
  }
  return { text: found.length === 0 ? text : out + text.slice(last), entities, counts };
}

// Chat turns redact the same history messages at every turn start: their detections are kept per text.
const CACHE_ENTRIES = 2048;
const CACHE_MAX_TEXT = 32_768;
const BUDGET_UNIT = 32_768;

// Exercises every detector, so that their regular expressions are compiled (and tiered up) before any budget runs.
const WARM_UP_TEXT =
  'Hi, my name is Jane Roe (jane.roe@example.com, +44 20 7946 0958 ext. 12, (415) 555-0132), born 1980-01-02.\n' +
  'Billing address: 221B Baker Street, London NW1 6XE; Hauptstraße 12, 10115 Berlin; 12 rue de la Paix, 75002 Paris.\n' +
  'Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 401-22-3344, host 10.1.2.3, password=Tr0ub4dor&3x.\n' +
  'name,city,company\nJan Novák,Brno,Novák a Syn s.r.o.\nQuinn, Hayes and Hayes work for Acme GmbH.\n\nBest regards,\nDr. Patel';
let warm = false;

/** Loads the word lists and compiles the detectors (about a second of CPU, once per process). */
export function loadRedactionData(): void {
  if (warm) return;
  loadEntityData();
  for (let i = 0; i < 3; i++) detectPii(WARM_UP_TEXT);
  warm = true;
}
const detectionCache = new LruMap<string, readonly PiiEntity[]>(CACHE_ENTRIES);
/** Detections done ahead on a worker thread (detection-offload.ts) for texts too long for the cache: taken once. */
const primed = new LruMap<string, readonly PiiEntity[]>(256);

/** The time one detection of `text` may take: the budget is per 32 KiB, so a long document may take longer. */
export function detectionBudgetMs(text: string, budgetPer32k: number): number {
  return budgetPer32k * Math.max(1, text.length / BUDGET_UNIT);
}

/** Whether a detection of `text` is already at hand (cached or primed). */
export function isDetectionKnown(text: string): boolean {
  return (text.length <= CACHE_MAX_TEXT && detectionCache.get(text) !== undefined) || primed.get(text) !== undefined;
}

/** Records what a detection run elsewhere (a worker, same detectors, within the same budget) found in `text`. */
export function primeDetection(text: string, found: readonly PiiEntity[]): void {
  if (text.length <= CACHE_MAX_TEXT) detectionCache.set(text, found);
  else primed.set(text, found);
}

/**
 * Detection under a time budget that fails closed: an exception or an overrun is a RedactionFailedError, so a caller
 * that sends text to a cloud model can only send it redacted or not at all. Results are cached per text.
 */
export function detectWithinBudget(text: string, budgetPer32k: number = DEFAULT_REDACTION_POLICY.timeBudgetMs): readonly PiiEntity[] {
  // The budget is per 32 KiB: a long document may take proportionally longer than a chat message.
  const budgetMs = detectionBudgetMs(text, budgetPer32k);
  const cacheable = text.length <= CACHE_MAX_TEXT;
  if (cacheable) {
    const hit = detectionCache.get(text);
    if (hit !== undefined) return hit;
  }
  const ahead = primed.get(text);
  if (ahead !== undefined) {
    primed.delete(text);
    return ahead;
  }
  loadRedactionData();
  const started = performance.now();
  let found: PiiEntity[];
  try {
    found = detectPii(text, started + budgetMs);
  } catch (error) {
    if (error instanceof RedactionFailedError) throw error;
    throw new RedactionFailedError('error', { cause: error });
  }
  if (performance.now() - started > budgetMs) throw new RedactionFailedError('timeout');
  if (cacheable) detectionCache.set(text, found);
  return found;
}

/** One-shot redaction (the `redact_text` tool): placeholders are numbered per type within this call. */
export function redactText(text: string, policy: RedactionPolicy = DEFAULT_REDACTION_POLICY): RedactTextResult {
  const vault = new PlaceholderVault();
  const r = vault.redact(text, policy);
  return { redacted_text: r.text, entities: r.entities };
}

/**
 * Placeholders that stay stable across every message of one chat session: `[EMAIL_1]` is the
 * same address each time it appears, so a model can reason about it without seeing it.
 */
export class PlaceholderVault {
  private readonly byKey = new Map<string, string>();
  private readonly byPlaceholder = new Map<string, string>();
  private readonly entryList: VaultEntry[] = [];
  private readonly next = new Map<PiiType, number>();

  get size(): number {
    return this.entryList.length;
  }

  /**
   * Replaces the personal data in `text` with this vault's placeholders: the entry point for every text that leaves
   * for a non-local model. Only the policy's types are replaced; throws RedactionFailedError (never returns the text
   * unredacted) if detection fails or exceeds the policy's time budget.
   */
  redact(text: string, policy: RedactionPolicy = DEFAULT_REDACTION_POLICY): VaultRedaction {
    const all = detectWithinBudget(text, policy.timeBudgetMs);
    const found = policy.redactTypes.length === PII_TYPES.length ? all : all.filter((e) => policy.redactTypes.includes(e.type));
    return replaceEntities(text, found, (e) => this.placeholderFor(e.type, e.value));
  }

  /** Replaces known placeholders with their original values; unknown ones are left as they are. */
  restore(text: string): string {
    if (this.entryList.length === 0 || text.indexOf('[') === -1) return text;
    return text.replace(PLACEHOLDER, (ph: string) => this.byPlaceholder.get(ph) ?? ph);
  }

  /** Restores placeholders inside every string of a JSON-like value (e.g. tool-call arguments). */
  restoreDeep<T>(value: T): T {
    return this.restoreUnknown(value) as T;
  }

  toJSON(): VaultSnapshot {
    return { version: 1, entries: this.entryList.map((e) => ({ ...e })) };
  }

  static fromJSON(snapshot: unknown): PlaceholderVault {
    const vault = new PlaceholderVault();
    if (typeof snapshot !== 'object' || snapshot === null || !('version' in snapshot) || snapshot.version !== 1) {
      throw new TypeError('unsupported placeholder vault snapshot');
    }
    const entries = 'entries' in snapshot ? snapshot.entries : undefined;
    if (!Array.isArray(entries)) throw new TypeError('placeholder vault snapshot has no entries');
    for (const raw of entries as unknown[]) {
      vault.load(parseEntry(raw));
    }
    return vault;
  }

  private placeholderFor(type: PiiType, value: string): string {
    const key = identityKey(type, value);
    const known = this.byKey.get(key) ?? (type === 'PERSON' ? this.personBySurname(value) : undefined);
    if (known !== undefined) return known;
    const n = (this.next.get(type) ?? 0) + 1;
    const placeholder = `[${type}_${n}]`;
    this.add({ placeholder, type, value }, key, n);
    return placeholder;
  }

  /**
   * "Ms. Ottová" (found as "Ottová") after "Šárka Ottová": a lone surname is the person already in the vault with that
   * surname, if exactly one is; with two (or none) it gets a placeholder of its own.
   */
  private personBySurname(value: string): string | undefined {
    if (/\s/.test(value.trim())) return undefined;
    const surname = value.trim().toLowerCase();
    let match: string | undefined;
    for (const entry of this.entryList) {
      if (entry.type !== 'PERSON' || surnameOf(entry.value) !== surname) continue;
      if (match !== undefined && match !== entry.placeholder) return undefined;
      match = entry.placeholder;
    }
    return match;
  }

  private load(entry: VaultEntry): void {
    if (this.byPlaceholder.has(entry.placeholder)) throw new TypeError(`duplicate placeholder ${entry.placeholder}`);
    const n = Number(entry.placeholder.slice(entry.type.length + 2, -1));
    this.add(entry, identityKey(entry.type, entry.value), n);
  }

  private add(entry: VaultEntry, key: string, n: number): void {
    if (!this.byKey.has(key)) this.byKey.set(key, entry.placeholder);
    this.byPlaceholder.set(entry.placeholder, entry.value);
    this.entryList.push(entry);
    if (n > (this.next.get(entry.type) ?? 0)) this.next.set(entry.type, n);
  }

  private restoreUnknown(value: unknown): unknown {
    if (typeof value === 'string') return this.restore(value);
    if (Array.isArray(value)) return value.map((v) => this.restoreUnknown(v));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.restoreUnknown(v);
      return out;
    }
    return value;
  }
}

function parseEntry(raw: unknown): VaultEntry {
  if (typeof raw !== 'object' || raw === null) throw new TypeError('invalid placeholder vault entry');
  const { placeholder, type, value } = raw as Record<string, unknown>;
  if (typeof type !== 'string' || !TYPE_SET.has(type) || typeof value !== 'string' || typeof placeholder !== 'string') {
    throw new TypeError('invalid placeholder vault entry');
  }
  const t = type as PiiType;
  if (!new RegExp(`^\\[${t}_[1-9]\\d{0,8}\\]$`).test(placeholder)) {
    throw new TypeError(`invalid placeholder ${placeholder}`);
  }
  return { placeholder, type: t, value };
}

/** Whether `s` (starting with "[" and without "]") could still grow into a placeholder. */
function isPlaceholderPrefix(s: string): boolean {
  if (s.length > LONGEST_TYPE + 11) return false;
  const body = s.slice(1);
  for (const t of PII_TYPES) {
    if (body.length <= t.length) {
      if (t.startsWith(body)) return true;
      continue;
    }
    if (!body.startsWith(t) || body.charCodeAt(t.length) !== 95) continue;
    const digits = body.slice(t.length + 1);
    if (digits === '' || (/^[1-9]\d{0,8}$/.test(digits))) return true;
  }
  return false;
}

export interface StreamingRestorer {
  /** Returns the restored text that can be shown now; holds back only a possible partial placeholder. */
  push(delta: string): string;
  /** Returns whatever is still held back (the stream has ended). */
  flush(): string;
}

/** Restores placeholders in a token stream, even when a placeholder is split across deltas. */
export function createStreamingRestorer(vault: PlaceholderVault): StreamingRestorer {
  let held = '';
  return {
    push(delta: string): string {
      const text = held + delta;
      held = '';
      // Nothing to restore yet: pass the text straight through.
      if (vault.size === 0) return text;
      const open = text.lastIndexOf('[');
      if (open !== -1 && text.indexOf(']', open) === -1 && isPlaceholderPrefix(text.slice(open))) {
        held = text.slice(open);
        return vault.restore(text.slice(0, open));
      }
      return vault.restore(text);
    },
    flush(): string {
      const rest = held;
      held = '';
      return vault.restore(rest);
    },
  };
}

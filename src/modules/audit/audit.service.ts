import { randomUUID } from 'node:crypto';
import type { Db, DbOrTx, Tx } from '../../db/client.js';
import type { ValueFingerprinter } from '../../lib/crypto/hmac.js';
import type { RequestContext } from '../auth/permissions.js';
import { hashEvent, type AuditEvent, type StoredAuditEvent } from './audit.chain.js';
import type { AuditMacKeyring } from './audit.mac.js';
import type { AuditSinkSet } from './audit.sink.js';
import { isAuditEventType, type AuditEventType } from './audit.events.js';
import { promptDigest, type PromptDigest } from './audit.privacy.js';
import type { AuditEventRow, AuditRepository, ChainHead } from './audit.repository.js';
import { sanitizeDetails, storableText } from './audit.sanitize.js';

export interface AuditEventInput {
  eventType: AuditEventType;
  /** The acting user (null for the system or an anonymous caller). */
  userId?: string | null;
  sessionId?: string | null;
  resourceType?: string | null;
  resourceId?: string | null;
  details?: Record<string, unknown>;
  context?: RequestContext;
}

/** The event exactly as the API, exports and the hash show it. */
export function presentEvent(row: AuditEventRow): AuditEvent {
  return {
    id: row.id,
    seq: row.seq,
    event_type: row.eventType,
    user_id: row.userId,
    session_id: row.sessionId,
    resource_type: row.resourceType,
    resource_id: row.resourceId,
    details: row.details,
    ip_address: row.ipAddress,
    user_agent: row.userAgent,
    created_at: row.createdAt.toISOString(),
    prev_hash: row.prevHash,
    hash: row.hash,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The database stores UUIDs lower-cased; hashing anything else would not verify after a round trip. */
function uuidOrNull(value: string | null | undefined, field: string): string | null {
  if (value === null || value === undefined) return null;
  const lowered = value.toLowerCase();
  if (!UUID.test(lowered)) throw new TypeError(`audit event ${field} must be a UUID`);
  return lowered;
}

function textOrNull(value: string | null | undefined, maxLength: number): string | null {
  if (value === null || value === undefined) return null;
  const text = storableText(String(value));
  return text.length > maxLength ? text.slice(0, maxLength) : text;
}

/** The event as the database and the sinks hold it: the contract's fields and the MAC. */
export function presentStoredEvent(row: AuditEventRow): StoredAuditEvent {
  return { ...presentEvent(row), mac: row.mac ?? null };
}

/** Validates and normalises an input into the stored fields (everything but seq, time and hashes). */
function prepare(input: AuditEventInput) {
  if (!isAuditEventType(input.eventType)) throw new TypeError(`unknown audit event type ${String(input.eventType)}`);
  return {
    eventType: input.eventType,
    userId: uuidOrNull(input.userId, 'userId'),
    sessionId: uuidOrNull(input.sessionId, 'sessionId'),
    resourceType: textOrNull(input.resourceType, 100),
    resourceId: textOrNull(input.resourceId, 200),
    // A request made with an API key says so in every event it causes.
    details: sanitizeDetails(input.context?.apiKeyId ? { ...input.details, api_key_id: input.context.apiKeyId } : input.details),
    ipAddress: textOrNull(input.context?.ipAddress, 100),
    userAgent: textOrNull(input.context?.userAgent, 512),
  };
}

type PreparedInput = ReturnType<typeof prepare>;

export interface AuditRecorderDeps {
  db: Db;
  repository: Pick<AuditRepository, 'lockHead' | 'append' | 'appendIfHead'>;
  /** Keys every event's MAC (the key is never in the database). */
  keyring: AuditMacKeyring;
  /** Where every append is also written before it commits; none configured: the database only. */
  sinks?: Pick<AuditSinkSet, 'configured' | 'write'>;
  fingerprinter: ValueFingerprinter;
  logPrompts: boolean;
  now?: () => Date;
  /** Most events one standalone transaction groups (bounded so one commit stays short). */
  maxBatch?: number;
}

/** How long after a missed compare-and-set appends go straight to the head lock. */
const CONTENDED_MS = 1_000;

/**
 * How far ahead of this host's clock the head's time may be and still be followed (another instance's clock running
 * a little fast). A head further ahead is not followed, so a forged head time cannot drag every later event into the
 * future; the verifier then reports the step back.
 */
const MAX_CLOCK_LEAD_MS = 60_000;

interface QueuedRecord {
  prepared: PreparedInput;
  resolve: (row: AuditEventRow) => void;
  reject: (error: unknown) => void;
}

/**
 * Writes audit events into the caller's transaction, so the change and its record commit together or not at all
 * (fail closed: if the audit row cannot be written, the change does not happen).
 *
 * Appends lock the single chain-head row until the transaction ends, so callers record their event as the last write
 * of the transaction: the head stays locked for as short a time as possible, and no lock is taken after it (which
 * could deadlock against another appender).
 */
export function createAuditRecorder({ db, repository, keyring, sinks, fingerprinter, logPrompts, now = () => new Date(), maxBatch = 500 }: AuditRecorderDeps) {
  // The head as this process last wrote it. Appends try it first with a compare-and-set (one statement, no lock
  // read); when another transaction or instance moved the head meanwhile, nothing is written and the append falls
  // back to locking the head and reading it.
  let knownHead: ChainHead | undefined;

  function chain(head: ChainHead, prepared: PreparedInput[]): { rows: AuditEventRow[]; next: ChainHead } {
    let prevHash = head.hash;
    let seq = head.seq;
    const rows: AuditEventRow[] = [];
    // One timestamp per append, never before the head's: time never goes backwards along the chain, whatever the
    // hosts' clocks (a retry takes a new one).
    const createdAt = eventTime(head);
    for (const input of prepared) {
      seq += 1;
      const base = { ...input, id: randomUUID(), seq, createdAt };
      const hash = hashEvent(prevHash, presentEvent({ ...base, prevHash, hash: '', mac: null }));
      rows.push({ ...base, prevHash, hash, mac: keyring.mac(hash) });
      prevHash = hash;
    }
    return { rows, next: { seq, hash: prevHash, createdAt } };
  }

  function eventTime(head: ChainHead): Date {
    const current = now();
    const previous = head.createdAt;
    if (previous && previous.getTime() > current.getTime() && previous.getTime() - current.getTime() <= MAX_CLOCK_LEAD_MS) return previous;
    return current;
  }

  /** Inside the appending transaction: if no sink accepts the events, this throws and the transaction rolls back. */
  async function toSinks(rows: AuditEventRow[], xid: string): Promise<void> {
    if (sinks?.configured) await sinks.write(rows.map(presentStoredEvent), xid);
  }

  // When a compare-and-set misses, appends lock the head for a while instead: under contention every miss would
  // otherwise wait for the head's holder to commit and then queue for the lock as well (a thundering herd).
  let missedAt = Number.NEGATIVE_INFINITY;

  /** The compare-and-set attempt; undefined when the head was not where this process left it. */
  async function appendAtKnownHead(db: DbOrTx, prepared: PreparedInput[]): Promise<AuditEventRow[] | undefined> {
    const expected = knownHead;
    if (expected === undefined || now().getTime() - missedAt < CONTENDED_MS) return undefined;
    const { rows, next } = chain(expected, prepared);
    const outcome = await repository.appendIfHead(db, rows, expected, next);
    if (!outcome) {
      missedAt = now().getTime();
      return undefined;
    }
    knownHead = next;
    await toSinks(rows, outcome.xid);
    return rows;
  }

  async function append(tx: Tx, prepared: PreparedInput[]): Promise<AuditEventRow[]> {
    const fast = await appendAtKnownHead(tx, prepared);
    if (fast) return fast;
    const head = await repository.lockHead(tx);
    const { rows, next } = chain(head, prepared);
    const outcome = await repository.append(tx, rows, next);
    knownHead = next;
    await toSinks(rows, outcome.xid);
    return rows;
  }

  /**
   * A standalone group. Without sinks the compare-and-set is one statement and needs no transaction around it; with
   * sinks it runs in one, so that the group commits only once a sink has it.
   */
  async function appendStandalone(prepared: PreparedInput[]): Promise<AuditEventRow[]> {
    if (sinks?.configured) return db.transaction((tx) => append(tx, prepared));
    const fast = await appendAtKnownHead(db, prepared);
    return fast ?? db.transaction((tx) => append(tx, prepared));
  }

  async function recordMany(tx: Tx, inputs: AuditEventInput[]): Promise<AuditEventRow[]> {
    if (inputs.length === 0) return [];
    return append(tx, inputs.map(prepare));
  }

  // Standalone events are grouped: while one transaction appends, the events that arrive meanwhile wait and go in
  // the next one together. The chain head is then locked once per group instead of once per event. The first append
  // starts a promise job later, so events recorded in the same synchronous run (a chat turn's LLM_REQUEST and
  // PII_REDACTED) already go together, as one statement.
  let queue: QueuedRecord[] = [];
  let flushing: Promise<void> | null = null;

  function startFlush(): void {
    if (flushing) return;
    flushing = Promise.resolve().then(flush).finally(() => {
      flushing = null;
      // An event queued between the loop's last check and this callback still gets written.
      if (queue.length > 0) startFlush();
    });
  }

  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        const rows = await appendStandalone(batch.map((item) => item.prepared));
        batch.forEach((item, index) => item.resolve(rows[index]!));
      } catch (error) {
        if (batch.length === 1) {
          batch[0]!.reject(error);
          continue;
        }
        // One bad event must not lose the others: retry each on its own, so only the failing ones reject.
        for (const item of batch) {
          try {
            const [row] = await appendStandalone([item.prepared]);
            item.resolve(row!);
          } catch (single) {
            item.reject(single);
          }
        }
      }
    }
  }

  return {
    /** Appends one event inside the caller's transaction. */
    async record(tx: Tx, input: AuditEventInput): Promise<AuditEventRow> {
      const [row] = await recordMany(tx, [input]);
      return row!;
    },

    /** Appends several events, in order, inside the caller's transaction. */
    recordMany,

    /**
     * For events that accompany no other write (a failed login, a read of a secret's list). Resolves once the event
     * is committed; rejects if it could not be. Never call it inside an open transaction: use `record(tx, ...)`.
     */
    recordStandalone(input: AuditEventInput): Promise<AuditEventRow> {
      let prepared: PreparedInput;
      try {
        prepared = prepare(input);
      } catch (error) {
        return Promise.reject(error);
      }
      return new Promise<AuditEventRow>((resolve, reject) => {
        queue.push({ prepared, resolve, reject });
        startFlush();
      });
    },

    /** A keyed fingerprint (`hmac-sha256:<hex>`) for correlating a sensitive value across events without storing it. */
    fingerprint(value: string | Uint8Array): string {
      return fingerprinter.fingerprint(value);
    },

    /** Prompt length and SHA-256, or the prompt itself when AUDIT_LOG_PROMPTS=true. */
    promptDigest(text: string): PromptDigest {
      return promptDigest(text, logPrompts);
    },

    /** Resolves when every standalone event queued so far is written (used on shutdown). */
    async drain(): Promise<void> {
      while (flushing) await flushing;
    },
  };
}

export type AuditRecorder = ReturnType<typeof createAuditRecorder>;

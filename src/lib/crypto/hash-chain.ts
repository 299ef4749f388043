import { createHash } from 'node:crypto';
import { CanonicalJsonError, canonicalJson } from '../canonical-json.js';

/**
 * The audit hash chain.
 *
 *   hash(event) = lowercase hex SHA-256 over the UTF-8 bytes of  prev_hash ‖ canonicalJson(fields)
 *
 * where prev_hash is the previous event's hash (GENESIS_HASH before seq 1) and `fields` is an object holding exactly
 * the eleven HASHED_EVENT_FIELDS below, nothing else (prev_hash and hash themselves are not hashed):
 *
 *   id             event UUID (string)
 *   seq            sequence number, a JSON number (1, 2, 3, ... without gaps)
 *   event_type     e.g. "LOGIN_SUCCEEDED"
 *   user_id, session_id, resource_type, resource_id, ip_address, user_agent
 *                  strings, or null when absent (never omitted)
 *   details        the JSON object stored with the event
 *   created_at     ISO 8601 UTC with milliseconds, as Date.prototype.toISOString() writes it
 *
 * canonicalJson is RFC 8785 (sorted member names, no whitespace, ECMAScript number formatting), so any JCS
 * implementation can verify an exported chain offline.
 */
export const GENESIS_HASH = '0'.repeat(64);

export const HASHED_EVENT_FIELDS = [
  'id',
  'seq',
  'event_type',
  'user_id',
  'session_id',
  'resource_type',
  'resource_id',
  'details',
  'ip_address',
  'user_agent',
  'created_at',
] as const;

export type HashedEventField = (typeof HASHED_EVENT_FIELDS)[number];

/** The hashed fields as a caller may hold them: seq as a database bigint may be a string, created_at a Date. */
export interface HashedEventFields {
  id: string;
  seq: number | bigint | string;
  event_type: string;
  user_id: string | null;
  session_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  details: unknown;
  ip_address: string | null;
  user_agent: string | null;
  created_at: string | Date;
}

export interface ChainEvent extends HashedEventFields {
  prev_hash: string;
  hash: string;
}

const HEX_HASH = /^[0-9a-f]{64}$/;

/** An event that cannot be hashed at all (a field missing, a seq that is not an integer, an invalid date). */
export class ChainEventError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'ChainEventError';
  }
}

function toSeq(value: unknown): number {
  const seq = typeof value === 'number' ? value : typeof value === 'bigint' || (typeof value === 'string' && /^[0-9]{1,16}$/.test(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(seq) || seq < 1) throw new ChainEventError(`Audit event seq must be a positive integer, got ${String(value)}`);
  return seq;
}

function toIsoTime(value: unknown): string {
  const time = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (!time || Number.isNaN(time.getTime())) throw new ChainEventError('Audit event created_at must be a Date or an ISO 8601 string');
  return time.toISOString();
}

/** The exact object that is canonicalized and hashed: the eleven fields, seq as a number, created_at as ISO. */
export function hashedEventFields(event: HashedEventFields): Record<HashedEventField, unknown> {
  for (const name of HASHED_EVENT_FIELDS) {
    if (event[name] === undefined) throw new ChainEventError(`Audit event field '${name}' is missing (use null for "none")`);
  }
  return {
    id: event.id,
    seq: toSeq(event.seq),
    event_type: event.event_type,
    user_id: event.user_id,
    session_id: event.session_id,
    resource_type: event.resource_type,
    resource_id: event.resource_id,
    details: event.details,
    ip_address: event.ip_address,
    user_agent: event.user_agent,
    created_at: toIsoTime(event.created_at),
  };
}

// The member names are fixed plain ASCII, so their canonical order and encoding can be computed once.
const SORTED_MEMBERS = [...HASHED_EVENT_FIELDS].sort().map((name, index) => ({ name, prefix: `${index === 0 ? '{' : ','}"${name}":` }));

/** canonicalJson(hashedEventFields(event)), without re-sorting the eleven known members for every event. */
export function canonicalEventJson(event: HashedEventFields): string {
  const fields = hashedEventFields(event);
  let out = '';
  for (const { name, prefix } of SORTED_MEMBERS) {
    try {
      out += prefix + canonicalJson(fields[name]);
    } catch (error) {
      if (error instanceof CanonicalJsonError) throw new CanonicalJsonError(error.reason, `/${name}${error.pointer}`);
      throw error;
    }
  }
  return `${out}}`;
}

/** The event's hash given its predecessor's. Fields other than HASHED_EVENT_FIELDS are ignored. */
export function computeEventHash(prevHash: string, event: HashedEventFields): string {
  if (!HEX_HASH.test(prevHash)) throw new ChainEventError('prev_hash must be 64 lowercase hex characters');
  return createHash('sha256').update(prevHash + canonicalEventJson(event), 'utf8').digest('hex');
}

export type ChainFailureKind =
  | 'malformed_event'
  | 'seq_gap'
  | 'seq_out_of_order'
  | 'prev_hash_mismatch'
  | 'hash_mismatch'
  | 'checkpoint_mismatch'
  | 'truncated';

export interface ChainFailure {
  kind: ChainFailureKind;
  seq: number;
  message: string;
}

export interface ChainVerification {
  valid: boolean;
  /** Events examined, including the invalid one when verification stopped. */
  checked: number;
  /** The last event verified as valid (the `after` anchor when none was); the chain is trustworthy up to here. */
  head_seq: number;
  head_hash: string;
  /** The first seq that is wrong or missing; null when valid. */
  first_invalid_seq: number | null;
  failure: ChainFailure | null;
}

export interface ChainAnchor {
  seq: number;
  hash: string;
}

export interface VerifyChainOptions {
  /**
   * The trusted event just before the first one supplied. Default: genesis `{seq: 0, hash: GENESIS_HASH}`, i.e. the
   * events start at seq 1. To verify a range, pass its predecessor (from an earlier verification or a checkpoint).
   */
  after?: ChainAnchor;
  /**
   * A checkpoint whose signature has been verified: the event at its seq must carry its hash (a chain rewritten
   * before it is caught), and the events must reach it (a truncated tail is caught). Events are expected up to at
   * least checkpoint.seq, so only pass one that lies within the range being verified.
   */
  checkpoint?: ChainAnchor;
}

export interface ChainVerifier {
  /** Checks the next event (in seq order); returns false once the chain is invalid, after which nothing more counts. */
  push(event: ChainEvent): boolean;
  /** The outcome so far, treating the events pushed as the whole range (the checkpoint must have been reached). */
  result(): ChainVerification;
}

function validAnchor(anchor: ChainAnchor, what: string): ChainAnchor {
  if (!Number.isSafeInteger(anchor.seq) || anchor.seq < 0 || !HEX_HASH.test(anchor.hash)) {
    throw new RangeError(`${what} must have a non-negative integer seq and a 64-character lowercase hex hash`);
  }
  return anchor;
}

/** Incremental verification, for callers that stream events from the database in batches. */
export function createChainVerifier(options: VerifyChainOptions = {}): ChainVerifier {
  const after = validAnchor(options.after ?? { seq: 0, hash: GENESIS_HASH }, 'after');
  const checkpoint = options.checkpoint && validAnchor(options.checkpoint, 'checkpoint');
  if (checkpoint && checkpoint.seq < after.seq) {
    throw new RangeError(`checkpoint seq ${checkpoint.seq} lies before the verified range (which starts after seq ${after.seq})`);
  }
  let headSeq = after.seq;
  let headHash = after.hash;
  let checked = 0;
  let failure: ChainFailure | null = null;

  if (checkpoint && checkpoint.seq === after.seq && checkpoint.hash !== after.hash) {
    failure = { kind: 'checkpoint_mismatch', seq: after.seq, message: `the chain up to seq ${after.seq} differs from the checkpoint` };
  }

  function fail(kind: ChainFailureKind, seq: number, message: string): false {
    failure = { kind, seq, message };
    return false;
  }

  function push(event: ChainEvent): boolean {
    if (failure) return false;
    checked += 1;
    const expected = headSeq + 1;
    let seq: number;
    let recomputed: string;
    try {
      seq = toSeq(event.seq);
      if (seq > expected) {
        const missing = seq - 1 === expected ? `seq ${expected} is` : `seqs ${expected}-${seq - 1} are`;
        return fail('seq_gap', expected, `${missing} missing (next present is ${seq})`);
      }
      if (seq < expected) return fail('seq_out_of_order', expected, `expected seq ${expected}, found ${seq} (duplicate or out of order)`);
      if (event.prev_hash !== headHash) {
        return fail('prev_hash_mismatch', seq, `prev_hash does not match the hash of seq ${headSeq}`);
      }
      recomputed = computeEventHash(headHash, event);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      return fail('malformed_event', expected, `event cannot be hashed: ${error.message}`);
    }
    if (event.hash !== recomputed) return fail('hash_mismatch', seq, `stored hash does not match the event's contents`);
    if (checkpoint && seq === checkpoint.seq && recomputed !== checkpoint.hash) {
      return fail('checkpoint_mismatch', seq, `the chain up to seq ${seq} differs from the checkpoint`);
    }
    headSeq = seq;
    headHash = recomputed;
    return true;
  }

  function result(): ChainVerification {
    let outcome: ChainFailure | null = failure;
    if (!outcome && checkpoint && headSeq < checkpoint.seq) {
      outcome = {
        kind: 'truncated',
        seq: headSeq + 1,
        message: `the chain ends at seq ${headSeq} but the checkpoint covers seq ${checkpoint.seq}: events were removed`,
      };
    }
    return {
      valid: outcome === null,
      checked,
      head_seq: headSeq,
      head_hash: headHash,
      first_invalid_seq: outcome?.seq ?? null,
      failure: outcome,
    };
  }

  return { push, result };
}

/** Verifies events given in seq order; stops at the first problem. */
export async function verifyChain(events: Iterable<ChainEvent> | AsyncIterable<ChainEvent>, options: VerifyChainOptions = {}): Promise<ChainVerification> {
  const verifier = createChainVerifier(options);
  if (Symbol.asyncIterator in events) {
    for await (const event of events) if (!verifier.push(event)) break;
  } else {
    for (const event of events) if (!verifier.push(event)) break;
  }
  return verifier.result();
}

import { computeEventHash, GENESIS_HASH } from '../../lib/crypto/hash-chain.js';
import type { AuditMacKeyring } from './audit.mac.js';

export { GENESIS_HASH };

/**
 * An audit event exactly as the API, exports and archives show it (CONTRACT "Audit"). The hash covers every field
 * but `prev_hash` and `hash`, as canonical JSON (RFC 8785): `hash = sha256(prev_hash ‖ canonical JSON)`.
 */
export interface AuditEvent {
  id: string;
  seq: number;
  event_type: string;
  user_id: string | null;
  session_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  details: Record<string, unknown>;
  ip_address: string | null;
  user_agent: string | null;
  created_at: string;
  prev_hash: string;
  hash: string;
}

export type HashedFields = Omit<AuditEvent, 'prev_hash' | 'hash'>;

/** An event as the database holds it: the contract's fields plus the MAC beside them (never part of the hash). */
export interface StoredAuditEvent extends AuditEvent {
  mac: string | null;
}

/** The shared algorithm (src/lib/crypto/hash-chain.ts): only the eleven hashed fields count, others are ignored. */
export function hashEvent(prevHash: string, event: HashedFields): string {
  return computeEventHash(prevHash, event);
}

/** Where a verification starts: the event before the first one checked (seq 0 and the genesis hash for a whole chain). */
export interface ChainAnchor {
  seq: number;
  hash: string;
  /** The anchor event's time, when known: the next event must not be earlier. */
  created_at?: string;
}

export const GENESIS_ANCHOR: ChainAnchor = { seq: 0, hash: GENESIS_HASH };

/** A `{seq, hash}` that the chain must contain, from a signed checkpoint or the chain head row. */
export interface ChainWitness {
  seq: number;
  hash: string;
  /** Says where the witness came from in a failure reason, e.g. "checkpoint signed at 2026-11-26T09:00:00.000Z". */
  source: string;
}

export interface ChainVerification {
  valid: boolean;
  /** Events whose hash and link were recomputed and found correct. */
  checked: number;
  /** The last event that verified (the anchor when none did). */
  last_seq: number;
  last_hash: string;
  first_invalid_seq: number | null;
  reason: string | null;
}

/**
 * Streaming verifier: feed events in `seq` order (any batch size), then `finish()` with the witnesses the chain must
 * reach. It holds only the last hash, so a chain of any length verifies in constant memory.
 */
export interface ChainVerifierOptions {
  /** Also require every event's MAC to verify under these keys (the database's events; exports carry no MAC). */
  keyring?: AuditMacKeyring;
}

export function createChainVerifier(anchor: ChainAnchor = GENESIS_ANCHOR, witnesses: readonly ChainWitness[] = [], options: ChainVerifierOptions = {}) {
  const { keyring } = options;
  let lastSeq = anchor.seq;
  let lastHash = anchor.hash;
  let lastTime = anchor.created_at === undefined ? Number.NEGATIVE_INFINITY : Date.parse(anchor.created_at);
  let checked = 0;
  let firstInvalid: number | null = null;
  let reason: string | null = null;
  const expected = new Map<number, ChainWitness[]>();
  for (const witness of witnesses) {
    if (witness.seq <= anchor.seq) continue;
    const list = expected.get(witness.seq) ?? [];
    list.push(witness);
    expected.set(witness.seq, list);
  }

  const fail = (seq: number, why: string) => {
    firstInvalid = seq;
    reason = why;
  };

  return {
    /** False once the chain is broken; later events are ignored. */
    push(event: AuditEvent | StoredAuditEvent): boolean {
      if (firstInvalid !== null) return false;
      const seq = lastSeq + 1;
      if (event.seq !== seq) {
        fail(seq, event.seq > seq ? `event ${seq} is missing (next is ${event.seq})` : `event ${event.seq} is out of order or duplicated`);
        return false;
      }
      if (event.prev_hash !== lastHash) {
        fail(seq, `prev_hash of event ${seq} does not match the hash of event ${lastSeq}`);
        return false;
      }
      let recomputed: string;
      try {
        recomputed = hashEvent(event.prev_hash, event);
      } catch (error) {
        fail(seq, `event ${seq} cannot be hashed: ${(error as Error).message}`);
        return false;
      }
      if (recomputed !== event.hash) {
        fail(seq, `hash of event ${seq} does not match its content (altered after it was written)`);
        return false;
      }
      for (const witness of expected.get(seq) ?? []) {
        if (witness.hash !== event.hash) {
          fail(seq, `event ${seq} differs from the ${witness.source} (the chain up to it was rewritten)`);
          return false;
        }
      }
      if (keyring) {
        const check = keyring.check(event.hash, 'mac' in event ? event.mac : null);
        if (check !== 'valid') {
          const why = { missing: 'carries no MAC', unknown_key: 'is keyed with a key that is not configured', invalid: 'has a MAC that does not verify' }[check];
          fail(seq, `event ${seq} ${why} (written without the audit key: forged or altered)`);
          return false;
        }
      }
      // The recorder never writes an event earlier than its predecessor, so a step back in time is a forgery.
      const time = Date.parse(event.created_at);
      if (time < lastTime) {
        fail(seq, `event ${seq} is dated before event ${lastSeq} (created_at goes backwards: backdated or reordered)`);
        return false;
      }
      lastSeq = seq;
      lastHash = event.hash;
      lastTime = time;
      checked += 1;
      return true;
    },

    /**
     * Closes the run. A witness beyond the last event means the tail was removed, unless the events were only ever
     * a part of the chain (an export file), where `beyondEnd: 'ignore'` applies.
     */
    finish(options: { beyondEnd?: 'fail' | 'ignore' } = {}): ChainVerification {
      if (firstInvalid === null && options.beyondEnd !== 'ignore') {
        const beyond = [...expected.values()].flat().filter((witness) => witness.seq > lastSeq);
        beyond.sort((a, b) => b.seq - a.seq);
        const furthest = beyond[0];
        if (furthest) fail(lastSeq + 1, `the chain ends at event ${lastSeq}, but the ${furthest.source} covers event ${furthest.seq} (the tail was truncated)`);
      }
      return {
        valid: firstInvalid === null,
        checked,
        last_seq: lastSeq,
        last_hash: lastHash,
        first_invalid_seq: firstInvalid,
        reason,
      };
    },
  };
}

export type ChainVerifier = ReturnType<typeof createChainVerifier>;

import fs from 'node:fs';
import readline from 'node:readline';
import type { StoredAuditEvent } from './audit.chain.js';
import type { TransactionStatus } from './audit.repository.js';
import type { SinkEventLine, SinkOpenedLine } from './audit.sink.js';

/** One event as a sink recorded it, before its transaction committed (or rolled back). */
interface SinkRecord {
  hash: string;
  prev_hash: string;
  xid: string;
  /** Set when the database holds this very event. */
  matched: boolean;
}

/** The sink files of every instance, merged by seq (a seq appears more than once when an append rolled back). */
export interface SinkIndex {
  files: string[];
  entries: Map<number, SinkRecord[]>;
  /** Events after this seq must all be in the files (the lowest `after_seq` any process opened a file at). */
  coveredAfter: number | null;
  events: number;
  malformedLines: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Any line of a sink file, before it is known which kind it is. */
type SinkLine = Partial<Omit<SinkEventLine, 'kind'>> & Partial<Omit<SinkOpenedLine, 'kind'>> & { kind?: unknown };

function isEventLine(value: SinkLine): value is SinkEventLine {
  return (
    value.kind === 'audit_event' &&
    Number.isSafeInteger(value.seq) &&
    typeof value.hash === 'string' &&
    HEX64.test(value.hash) &&
    typeof value.prev_hash === 'string' &&
    typeof value.xid === 'string'
  );
}

/** Reads sink files (JSON Lines as audit.sink.ts writes them) into one index. Memory: about 200 bytes an event. */
export async function readSinkFiles(files: readonly string[]): Promise<SinkIndex> {
  const index: SinkIndex = { files: [...files], entries: new Map(), coveredAfter: null, events: 0, malformedLines: 0 };
  for (const file of files) {
    const input = fs.createReadStream(file, { encoding: 'utf8' });
    const lines = readline.createInterface({ input, crlfDelay: Infinity });
    try {
      for await (const raw of lines) {
        const line = raw.trim();
        if (line === '') continue;
        let value: SinkLine;
        try {
          value = JSON.parse(line) as SinkLine;
        } catch {
          // A line cut short by a crash or a full disk: its append failed, so its transaction rolled back.
          index.malformedLines += 1;
          continue;
        }
        if (value.kind === 'sink_opened' && Number.isSafeInteger(value.after_seq)) {
          index.coveredAfter = index.coveredAfter === null ? value.after_seq! : Math.min(index.coveredAfter, value.after_seq!);
        } else if (isEventLine(value)) {
          const list = index.entries.get(value.seq) ?? [];
          if (!list.some((entry) => entry.hash === value.hash)) list.push({ hash: value.hash, prev_hash: value.prev_hash, xid: value.xid, matched: false });
          index.entries.set(value.seq, list);
          index.events += 1;
        } else {
          index.malformedLines += 1;
        }
      }
    } finally {
      lines.close();
      input.destroy();
    }
  }
  return index;
}

export interface SinkComparison {
  /** Database events compared with a sink entry. */
  checked: number;
  /** Sink entries for events not in the database whose transaction's fate cannot be told any more (not an error). */
  unconfirmed: number;
  covered_after: number | null;
  first_invalid_seq: number | null;
  reason: string | null;
}

/**
 * Compares the database's events with the sinks, in both directions:
 * - every database event after the sinks' start must be in a sink with the same hash (else it was inserted or
 *   rewritten in the database);
 * - every sink entry whose transaction committed must be in the database (else it was deleted: a truncated tail, a
 *   removed event). A transaction committed when the database says so (pg_xact_status) or when an append in another
 *   transaction built on it (it read it as the committed head), which the sink itself shows.
 */
export function createSinkComparator(index: SinkIndex, range: { afterSeq: number; throughSeq: number | null }) {
  let checked = 0;
  let failure: { seq: number; reason: string } | null = null;
  const fail = (seq: number, reason: string) => {
    if (!failure || seq < failure.seq) failure = { seq, reason };
  };
  const coveredAfter = index.coveredAfter;

  return {
    /** The highest seq any sink recorded. */
    maxSeq(): number {
      let max = 0;
      for (const seq of index.entries.keys()) if (seq > max) max = seq;
      return max;
    },

    /**
     * A database event, in seq order. `verified: false` for events past the head the verification started from
     * (appended while it ran): they only vouch for sink entries, their own absence from a sink means nothing yet.
     */
    observe(event: StoredAuditEvent, verified = true): void {
      const entries = index.entries.get(event.seq);
      const match = entries?.find((entry) => entry.hash === event.hash);
      if (match) {
        match.matched = true;
        checked += 1;
        return;
      }
      if (verified && coveredAfter !== null && event.seq > coveredAfter) {
        fail(event.seq, `event ${event.seq} is in the database but in no audit sink (inserted or rewritten in the database)`);
      }
    },

    /** The sink entries the database lacks, and whether their transactions committed. */
    async finish(status: (xids: string[]) => Promise<Map<string, TransactionStatus>>): Promise<SinkComparison> {
      const missing: { seq: number; entry: SinkRecord }[] = [];
      for (const [seq, entries] of index.entries) {
        if (seq <= range.afterSeq || (range.throughSeq !== null && seq > range.throughSeq)) continue;
        for (const entry of entries) if (!entry.matched) missing.push({ seq, entry });
      }
      const builtOn = (seq: number, entry: SinkRecord) =>
        (index.entries.get(seq + 1) ?? []).some((next) => next.prev_hash === entry.hash && next.xid !== entry.xid);
      // A multi-event append is one transaction: another transaction building on its last event confirms all of it.
      const confirmedXids = new Set(missing.filter(({ seq, entry }) => builtOn(seq, entry)).map(({ entry }) => entry.xid));
      const statuses = await status([...new Set(missing.map(({ entry }) => entry.xid).filter((xid) => !confirmedXids.has(xid)))]);
      let unconfirmed = 0;
      for (const { seq, entry } of missing.sort((a, b) => a.seq - b.seq)) {
        const fate = confirmedXids.has(entry.xid) ? 'committed' : (statuses.get(entry.xid) ?? 'unknown');
        if (fate === 'committed') {
          fail(seq, `event ${seq} was committed (audit sink, transaction ${entry.xid}) but is not in the database as written (deleted, truncated or rewritten)`);
          break;
        }
        if (fate === 'unknown') unconfirmed += 1;
      }
      const outcome = failure as { seq: number; reason: string } | null;
      return {
        checked,
        unconfirmed,
        covered_after: coveredAfter,
        first_invalid_seq: outcome?.seq ?? null,
        reason: outcome?.reason ?? null,
      };
    },
  };
}

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UpstreamError } from '../../lib/errors.js';
import type { StoredAuditEvent } from './audit.chain.js';

/**
 * Audit sinks: every event is also written, as it is appended, somewhere the database's users cannot reach, so that
 * deleting rows (a truncated tail, a removed event) is detected by comparing the database with the sink
 * (`cdsa audit verify --sink`). Like Vault's audit devices they fail closed: when no sink accepts an append, the
 * append throws, its transaction rolls back, and the change it records does not happen (503).
 *
 * The write happens inside the appending transaction, after the events are inserted and before it commits. An entry
 * can therefore belong to a transaction that later rolled back; each line carries the database transaction id
 * (`xid`), so a verifier can tell (pg_xact_status, or a later append in another transaction that builds on it).
 */
export interface AuditSink {
  /** Names the sink in logs and errors (never a secret). */
  readonly name: string;
  write(events: readonly StoredAuditEvent[], xid: string): Promise<void>;
  close(): Promise<void>;
}

/** The first line each process writes to a sink file: events after `after_seq` are in the files from here on. */
export interface SinkOpenedLine {
  kind: 'sink_opened';
  after_seq: number;
  after_hash: string;
  time: string;
  host: string;
  pid: number;
}

export type SinkEventLine = StoredAuditEvent & { kind: 'audit_event'; xid: string };

export class AuditSinkUnavailableError extends UpstreamError {
  constructor() {
    super('audit sink', 'The audit trail cannot be written to its sink; the action was not performed', true);
  }
}

/**
 * An append-only JSON Lines file (opened with O_APPEND, one write per append, so several processes may share a file
 * on a local filesystem). The directory is created owner-only; the file is never truncated or rewritten by CDSA.
 */
export function createFileSink(file: string): AuditSink {
  let fd: number | null = null;

  function open(first: StoredAuditEvent): string {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fd = fs.openSync(file, 'a', 0o600);
    const line: SinkOpenedLine = {
      kind: 'sink_opened',
      after_seq: first.seq - 1,
      after_hash: first.prev_hash,
      time: new Date().toISOString(),
      host: os.hostname(),
      pid: process.pid,
    };
    return `${JSON.stringify(line)}\n`;
  }

  return {
    name: `file:${file}`,
    // Synchronous on purpose: one small write into the page cache, made while the appending transaction (and the chain
    // head) is held, costs less than a round trip through the thread pool, and nothing can interleave with it.
    async write(events, xid) {
      if (events.length === 0) return;
      let text = fd === null ? open(events[0]!) : '';
      for (const event of events) text += `${JSON.stringify({ kind: 'audit_event', ...event, xid } satisfies SinkEventLine)}\n`;
      const bytes = Buffer.from(text, 'utf8');
      try {
        const written = fs.writeSync(fd!, bytes);
        if (written !== bytes.length) throw new Error(`short write to ${file}`);
      } catch (error) {
        // Reopened (with a new header) on the next append, e.g. after the disk was full.
        const failed = fd;
        fd = null;
        if (failed !== null) fs.closeSync(failed);
        throw error;
      }
    },
    async close() {
      const closing = fd;
      fd = null;
      if (closing !== null) fs.closeSync(closing);
    },
  };
}

/**
 * An HTTP endpoint of a SIEM or log collector: each append is one POST of its events as JSON Lines
 * (`application/x-ndjson`, the same lines as the file sink), accepted when the endpoint answers 2xx within the timeout.
 */
export function createHttpSink(options: { url: string; token?: string; timeoutMs: number; fetchImpl?: typeof fetch }): AuditSink {
  const send = options.fetchImpl ?? fetch;
  const target = new URL(options.url);
  return {
    // The URL may carry credentials or a path with a tenant: only its origin is named.
    name: `http:${target.origin}`,
    async write(events, xid) {
      if (events.length === 0) return;
      const body = events.map((event) => `${JSON.stringify({ kind: 'audit_event', ...event, xid } satisfies SinkEventLine)}\n`).join('');
      const headers: Record<string, string> = { 'content-type': 'application/x-ndjson' };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      const response = await send(options.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs) });
      // Drain the body so the connection is reused.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) throw new Error(`audit sink ${target.origin} answered ${response.status}`);
    },
    async close() {},
  };
}

export interface SinkLogger {
  error(obj: object, msg: string): void;
}

/**
 * All configured sinks together: an append succeeds when at least one sink accepted it (the others' failures are
 * logged), and fails closed with AuditSinkUnavailableError when none did.
 */
export function createSinkSet(sinks: readonly AuditSink[], logger?: SinkLogger) {
  return {
    configured: sinks.length > 0,
    names: sinks.map((sink) => sink.name),
    async write(events: readonly StoredAuditEvent[], xid: string): Promise<void> {
      if (sinks.length === 0 || events.length === 0) return;
      const results = await Promise.allSettled(sinks.map((sink) => sink.write(events, xid)));
      let accepted = 0;
      results.forEach((result, index) => {
        if (result.status === 'fulfilled') accepted += 1;
        else logger?.error({ err: result.reason, sink: sinks[index]!.name, seq: events[0]!.seq }, 'audit sink rejected an append');
      });
      if (accepted === 0) throw new AuditSinkUnavailableError();
    },
    async close(): Promise<void> {
      await Promise.allSettled(sinks.map((sink) => sink.close()));
    },
  };
}

export type AuditSinkSet = ReturnType<typeof createSinkSet>;

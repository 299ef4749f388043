import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../../db/client.js';
import { computeEventHash } from '../../lib/crypto/hash-chain.js';
import type { RequestContext } from '../auth/permissions.js';
import type { AuditEventType } from './audit.events.js';
import type { AuditEventRow, AuditRepository } from './audit.repository.js';
import { sanitizeDetails } from './audit.sanitize.js';

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

/** The fields the hash covers, exactly as the contract's event shows them (timestamps as ISO strings). */
export function hashedFields(row: Omit<AuditEventRow, 'prevHash' | 'hash'>) {
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
  };
}

export interface AuditRecorderDeps {
  db: Db;
  repository: AuditRepository;
  now?: () => Date;
}

/**
 * Writes audit events into the caller's transaction, so the change and its record commit together or not at all
 * (fail closed: if the audit row cannot be written, the change does not happen).
 */
export function createAuditRecorder({ db, repository, now = () => new Date() }: AuditRecorderDeps) {
  async function recordMany(tx: Tx, inputs: AuditEventInput[]): Promise<AuditEventRow[]> {
    if (inputs.length === 0) return [];
    const head = await repository.lockHead(tx);
    let prevHash = head.hash;
    let seq = head.seq;
    const rows: AuditEventRow[] = [];
    for (const input of inputs) {
      seq += 1;
      const base = {
        id: randomUUID(),
        seq,
        eventType: input.eventType,
        userId: input.userId ?? null,
        sessionId: input.sessionId ?? null,
        resourceType: input.resourceType ?? null,
        resourceId: input.resourceId ?? null,
        details: (sanitizeDetails(input.details ?? {}) ?? {}) as Record<string, unknown>,
        ipAddress: input.context?.ipAddress ?? null,
        userAgent: input.context?.userAgent ?? null,
        createdAt: now(),
      };
      const hash = computeEventHash(prevHash, hashedFields(base));
      rows.push({ ...base, prevHash, hash });
      prevHash = hash;
    }
    await repository.insertMany(tx, rows);
    await repository.moveHead(tx, seq, prevHash);
    return rows;
  }

  return {
    /** Appends one event inside the caller's transaction. */
    async record(tx: Tx, input: AuditEventInput): Promise<AuditEventRow> {
      const [row] = await recordMany(tx, [input]);
      return row!;
    },
    recordMany,
    /** For events that accompany no other write (a failed login, a read of a secret's list). */
    async recordStandalone(input: AuditEventInput): Promise<AuditEventRow> {
      return db.transaction(async (tx) => {
        const [row] = await recordMany(tx, [input]);
        return row!;
      });
    },
  };
}

export type AuditRecorder = ReturnType<typeof createAuditRecorder>;

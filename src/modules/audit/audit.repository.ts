import { and, asc, desc, eq, gt, gte, inArray, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client.js';
import { queryRows } from '../../db/client.js';
import type { AuditEvent, StoredAuditEvent } from './audit.chain.js';
import { auditArchives, auditChainHead, auditCheckpoints, auditEvents, auditReportChunks, auditReports } from '../../db/schema/audit.js';

export type AuditEventRow = typeof auditEvents.$inferSelect;
export type NewAuditEventRow = typeof auditEvents.$inferInsert;
export type AuditCheckpointRow = typeof auditCheckpoints.$inferSelect;
export type AuditArchiveRow = typeof auditArchives.$inferSelect;
export type AuditReportRow = typeof auditReports.$inferSelect;

export interface EventFilter {
  eventType?: string;
  userId?: string;
  /** Inclusive bounds on created_at. */
  from?: Date;
  to?: Date;
}

export interface ChainHead {
  seq: number;
  hash: string;
  /** The head event's time (null before the first event, or for a head written by an older version). */
  createdAt?: Date | null;
}

/** What an append wrote: the database transaction id lets a verifier ask later whether it committed. */
export interface AppendOutcome {
  xid: string;
}

export type TransactionStatus = 'committed' | 'aborted' | 'in progress' | 'unknown';

export interface CountRow {
  key: string | null;
  count: number;
}

function eventConditions(filter: EventFilter): SQL[] {
  const conditions: SQL[] = [];
  if (filter.eventType !== undefined) conditions.push(eq(auditEvents.eventType, filter.eventType));
  if (filter.userId !== undefined) conditions.push(eq(auditEvents.userId, filter.userId));
  if (filter.from !== undefined) conditions.push(gte(auditEvents.createdAt, filter.from));
  if (filter.to !== undefined) conditions.push(lte(auditEvents.createdAt, filter.to));
  return conditions;
}

/** The same conditions as raw SQL, for the aggregate queries. */
function rawConditions(filter: EventFilter): SQL {
  const parts: SQL[] = [sql`true`];
  if (filter.eventType !== undefined) parts.push(sql`event_type = ${filter.eventType}`);
  if (filter.userId !== undefined) parts.push(sql`user_id = ${filter.userId}`);
  if (filter.from !== undefined) parts.push(sql`created_at >= ${filter.from.toISOString()}::timestamptz`);
  if (filter.to !== undefined) parts.push(sql`created_at <= ${filter.to.toISOString()}::timestamptz`);
  return sql.join(parts, sql` and `);
}

const toNumber = (value: unknown): number => Number(value ?? 0);

export function createAuditRepository() {
  return {
    /** Locks the chain head until the caller's transaction ends: appends are serialised, the chain stays gap-free. */
    async lockHead(tx: Tx): Promise<ChainHead> {
      const rows = await tx
        .select({ seq: auditChainHead.seq, hash: auditChainHead.hash, createdAt: auditChainHead.createdAt })
        .from(auditChainHead)
        .where(eq(auditChainHead.id, 1))
        .for('update');
      const head = rows[0];
      if (!head) throw new Error('audit chain head is missing (migrations not applied?)');
      return head;
    },

    /** Inserts the events and moves the head in one statement (one round trip less while the head is locked). */
    async append(tx: Tx, rows: NewAuditEventRow[], next: ChainHead): Promise<AppendOutcome> {
      const inserted = tx.insert(auditEvents).values(rows);
      const result = await queryRows<{ xid: string }>(
        tx,
        sql`with inserted as (${inserted.getSQL()})
            update ${auditChainHead} set seq = ${next.seq}, hash = ${next.hash}, created_at = ${(next.createdAt ?? null)?.toISOString() ?? null}::timestamptz
            where id = 1 returning pg_current_xact_id()::text as xid`,
      );
      return { xid: String(result[0]?.xid ?? '') };
    },

    /**
     * Inserts the events and moves the head in one statement, but only if the head is still `expected` (a
     * compare-and-set on the head row); false, with nothing written, when another append moved it first. The rows
     * travel as one JSON parameter, so the statement text is the same for any number of events.
     */
    async appendIfHead(db: DbOrTx, rows: NewAuditEventRow[], expected: ChainHead, next: ChainHead): Promise<AppendOutcome | null> {
      const records = rows.map((row) => ({
        id: row.id,
        seq: row.seq,
        event_type: row.eventType,
        user_id: row.userId ?? null,
        session_id: row.sessionId ?? null,
        resource_type: row.resourceType ?? null,
        resource_id: row.resourceId ?? null,
        details: row.details ?? {},
        ip_address: row.ipAddress ?? null,
        user_agent: row.userAgent ?? null,
        created_at: row.createdAt.toISOString(),
        prev_hash: row.prevHash,
        hash: row.hash,
        mac: row.mac ?? null,
      }));
      const result = await queryRows<{ moved: number; xid: string }>(
        db,
        sql`
          WITH head AS (
            UPDATE audit_chain_head SET seq = ${next.seq}::bigint, hash = ${next.hash}::text,
                                        created_at = ${(next.createdAt ?? null)?.toISOString() ?? null}::timestamptz
            WHERE id = 1 AND seq = ${expected.seq}::bigint AND hash = ${expected.hash}::text
            RETURNING 1
          ), inserted AS (
            INSERT INTO audit_events (id, seq, event_type, user_id, session_id, resource_type, resource_id, details,
                                      ip_address, user_agent, created_at, prev_hash, hash, mac)
            SELECT r.id, r.seq, r.event_type, r.user_id, r.session_id, r.resource_type, r.resource_id, r.details,
                   r.ip_address, r.user_agent, r.created_at, r.prev_hash, r.hash, r.mac
            FROM jsonb_to_recordset(${JSON.stringify(records)}::jsonb) AS r(
              id uuid, seq bigint, event_type text, user_id uuid, session_id uuid, resource_type text, resource_id text,
              details jsonb, ip_address text, user_agent text, created_at timestamptz, prev_hash text, hash text, mac text)
            WHERE EXISTS (SELECT 1 FROM head)
          )
          SELECT count(*)::int AS moved, pg_current_xact_id()::text AS xid FROM head`,
      );
      return Number(result[0]?.moved ?? 0) === 1 ? { xid: String(result[0]!.xid) } : null;
    },

    async head(db: DbOrTx): Promise<ChainHead> {
      const rows = await db
        .select({ seq: auditChainHead.seq, hash: auditChainHead.hash, createdAt: auditChainHead.createdAt })
        .from(auditChainHead)
        .where(eq(auditChainHead.id, 1));
      const head = rows[0];
      if (!head) throw new Error('audit chain head is missing (migrations not applied?)');
      return head;
    },

    async findById(db: DbOrTx, id: string): Promise<AuditEventRow | undefined> {
      const rows = await db.select().from(auditEvents).where(eq(auditEvents.id, id)).limit(1);
      return rows[0];
    },

    async findBySeq(db: DbOrTx, seq: number): Promise<AuditEventRow | undefined> {
      const rows = await db.select().from(auditEvents).where(eq(auditEvents.seq, seq)).limit(1);
      return rows[0];
    },

    /** Newest first; `beforeSeq` is the keyset cursor. */
    async list(db: DbOrTx, filter: EventFilter, beforeSeq: number | undefined, limit: number): Promise<AuditEventRow[]> {
      const conditions = eventConditions(filter);
      if (beforeSeq !== undefined) conditions.push(lt(auditEvents.seq, beforeSeq));
      return db
        .select()
        .from(auditEvents)
        .where(conditions.length > 0 ? and(...conditions) : undefined)
        .orderBy(desc(auditEvents.seq))
        .limit(limit);
    },

    /**
     * Events about one document, newest first: those whose resource it is (reads, downloads) and those that list it in
     * `details.document_ids` (searches, retrievals, citations). Both halves use their own index.
     */
    async documentAccess(db: DbOrTx, documentId: string, eventTypes: readonly string[], beforeSeq: number | undefined, limit: number): Promise<AuditEventRow[]> {
      const about = or(
        and(eq(auditEvents.resourceType, 'document'), eq(auditEvents.resourceId, documentId)),
        sql`(${auditEvents.details} ? 'document_ids' and (${auditEvents.details} -> 'document_ids') @> ${JSON.stringify([documentId])}::jsonb)`,
      )!;
      const conditions = [about, inArray(auditEvents.eventType, [...eventTypes])];
      if (beforeSeq !== undefined) conditions.push(lt(auditEvents.seq, beforeSeq));
      return db.select().from(auditEvents).where(and(...conditions)).orderBy(desc(auditEvents.seq)).limit(limit);
    },

    /** One batch of a forward scan in seq order: `afterSeq < seq <= throughSeq`. */
    async batchAfter(db: DbOrTx, afterSeq: number, throughSeq: number, limit: number, filter: EventFilter = {}): Promise<AuditEventRow[]> {
      return db
        .select()
        .from(auditEvents)
        .where(and(gt(auditEvents.seq, afterSeq), lte(auditEvents.seq, throughSeq), ...eventConditions(filter)))
        .orderBy(asc(auditEvents.seq))
        .limit(limit);
    },

    /**
     * The events with `afterSeq < seq <= throughSeq`, exactly as hashed, for verification and export. Callers walk
     * the chain in seq windows (a range on the unique index is planned well even before the table has statistics),
     * and the database formats the timestamp: about three times faster than mapping rows through the query builder.
     */
    async chainRange(db: DbOrTx, afterSeq: number, throughSeq: number): Promise<AuditEvent[]> {
      const rows = await queryRows<Omit<AuditEvent, 'seq'> & { seq: unknown }>(
        db,
        sql`select id, seq, event_type, user_id, session_id, resource_type, resource_id, details, ip_address, user_agent,
                   to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at, prev_hash, hash
            from audit_events where seq > ${afterSeq} and seq <= ${throughSeq} order by seq`,
      );
      return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
    },

    /** chainRange plus each event's MAC, for verification (exports and reports show the contract's fields only). */
    async storedChainRange(db: DbOrTx, afterSeq: number, throughSeq: number): Promise<StoredAuditEvent[]> {
      const rows = await queryRows<Omit<StoredAuditEvent, 'seq'> & { seq: unknown }>(
        db,
        sql`select id, seq, event_type, user_id, session_id, resource_type, resource_id, details, ip_address, user_agent,
                   to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at, prev_hash, hash, mac
            from audit_events where seq > ${afterSeq} and seq <= ${throughSeq} order by seq`,
      );
      return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
    },

    /** The next events' hash and MAC in seq order (a range on the unique seq index), for keying older rows. */
    async macsAfter(db: DbOrTx, afterSeq: number, limit: number): Promise<{ seq: number; hash: string; mac: string | null }[]> {
      const rows = await queryRows<{ seq: unknown; hash: string; mac: string | null }>(
        db,
        sql`select seq, hash, mac from audit_events where seq > ${afterSeq} order by seq limit ${limit}`,
      );
      return rows.map((row) => ({ seq: Number(row.seq), hash: row.hash, mac: row.mac }));
    },

    /** Keys rows written before the key existed; the append-only trigger lets a MAC be set exactly once, on a row that had none. */
    async setMacs(tx: Tx, macs: { seq: number; mac: string }[]): Promise<void> {
      if (macs.length === 0) return;
      await tx.execute(sql`
        update audit_events e set mac = m.mac
        from jsonb_to_recordset(${JSON.stringify(macs)}::jsonb) as m(seq bigint, mac text)
        where e.seq = m.seq and e.mac is null`);
    },

    /** Whether the database transactions that wrote sink entries committed (pg_xact_status; 'unknown' once too old). */
    async transactionStatus(db: DbOrTx, xids: string[]): Promise<Map<string, TransactionStatus>> {
      const statuses = new Map<string, TransactionStatus>();
      const valid = [...new Set(xids.filter((xid) => /^\d{1,20}$/.test(xid)))];
      for (let i = 0; i < valid.length; i += 1000) {
        const slice = valid.slice(i, i + 1000);
        const rows = await queryRows<{ xid: string; status: string | null }>(
          db,
          sql`select x as xid, pg_xact_status(x::xid8) as status from jsonb_array_elements_text(${JSON.stringify(slice)}::jsonb) as x`,
        );
        for (const row of rows) statuses.set(row.xid, (row.status as TransactionStatus | null) ?? 'unknown');
      }
      return statuses;
    },

    async minSeq(db: DbOrTx): Promise<number | null> {
      const rows = await queryRows<{ seq: unknown }>(db, sql`select min(seq) as seq from audit_events`);
      const value = rows[0]?.seq;
      return value === null || value === undefined ? null : Number(value);
    },

    /** The smallest contiguous seq range holding every event of the period (created_at is not strictly seq-ordered across hosts). */
    async seqRangeForPeriod(db: DbOrTx, from: Date, to: Date): Promise<{ first: number; last: number; count: number } | null> {
      const rows = await queryRows<{ first: unknown; last: unknown; count: unknown }>(
        db,
        sql`select min(seq) as first, max(seq) as last, count(*) as count from audit_events
            where created_at >= ${from.toISOString()}::timestamptz and created_at <= ${to.toISOString()}::timestamptz`,
      );
      const row = rows[0];
      if (!row || row.first === null || row.first === undefined) return null;
      return { first: Number(row.first), last: Number(row.last), count: toNumber(row.count) };
    },

    async countBy(db: DbOrTx, column: 'event_type' | 'user_id' | 'day', filter: EventFilter): Promise<CountRow[]> {
      const key =
        column === 'day'
          ? sql`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')`
          : column === 'user_id'
            ? sql`user_id::text`
            : sql`event_type`;
      const rows = await queryRows<{ key: string | null; count: unknown }>(
        db,
        sql`select ${key} as key, count(*) as count from audit_events where ${rawConditions(filter)} group by 1 order by 2 desc, 1`,
      );
      return rows.map((row) => ({ key: row.key, count: toNumber(row.count) }));
    },

    async count(db: DbOrTx, filter: EventFilter): Promise<number> {
      const rows = await queryRows<{ count: unknown }>(db, sql`select count(*) as count from audit_events where ${rawConditions(filter)}`);
      return toNumber(rows[0]?.count);
    },

    /** Decisions in the period with the time since their request (an approval's events share its resource_id). */
    async approvalDecisions(db: DbOrTx, filter: EventFilter): Promise<{ decision: string; count: number; avgSeconds: number | null; medianSeconds: number | null; maxSeconds: number | null }[]> {
      const rows = await queryRows<{ decision: string; count: unknown; avg_s: unknown; median_s: unknown; max_s: unknown }>(
        db,
        sql`with decisions as (
              select d.resource_id,
                     coalesce(d.details->>'decision', d.details->>'status', 'UNKNOWN') as decision,
                     extract(epoch from d.created_at - (
                       select min(r.created_at) from audit_events r
                       where r.event_type = 'APPROVAL_REQUESTED' and r.resource_id = d.resource_id and r.seq < d.seq
                     )) as seconds
              from audit_events d
              where d.event_type = 'APPROVAL_DECISION' and ${rawConditions({ ...filter, eventType: undefined })}
            )
            select decision, count(*) as count, avg(seconds) as avg_s,
                   percentile_cont(0.5) within group (order by seconds) as median_s, max(seconds) as max_s
            from decisions group by decision order by decision`,
      );
      const orNull = (value: unknown) => (value === null || value === undefined ? null : Number(value));
      return rows.map((row) => ({
        decision: row.decision,
        count: toNumber(row.count),
        avgSeconds: orNull(row.avg_s),
        medianSeconds: orNull(row.median_s),
        maxSeconds: orNull(row.max_s),
      }));
    },

    /**
     * Entities redacted in the period, by type. PII_REDACTED details carry `counts: {TYPE: n}`, or `entities` as a
     * list of `{type, count}` (what chat writes: one entry per type; an entry without `count` is one entity), or only
     * `entity_count`; each form is counted.
     */
    async redactionCounts(db: DbOrTx, filter: EventFilter): Promise<CountRow[]> {
      const conditions = rawConditions({ ...filter, eventType: 'PII_REDACTED' });
      const rows = await queryRows<{ key: string; count: unknown }>(
        db,
        sql`select key, sum(n) as count from (
              select c.key, case when jsonb_typeof(c.value) = 'number' then (c.value #>> '{}')::numeric else 0 end as n
              from audit_events e, jsonb_each(case when jsonb_typeof(e.details->'counts') = 'object' then e.details->'counts' else '{}'::jsonb end) c
              where ${conditions}
              union all
              select coalesce(x->>'type', 'UNKNOWN'), case when jsonb_typeof(x->'count') = 'number' then (x->>'count')::numeric else 1 end
              from audit_events e, jsonb_array_elements(case when jsonb_typeof(e.details->'entities') = 'array' then e.details->'entities' else '[]'::jsonb end) x
              where ${conditions} and jsonb_typeof(e.details->'counts') is distinct from 'object'
              union all
              select 'UNSPECIFIED', (e.details->>'entity_count')::numeric
              from audit_events e
              where ${conditions} and jsonb_typeof(e.details->'entity_count') = 'number'
                and jsonb_typeof(e.details->'counts') is distinct from 'object' and jsonb_typeof(e.details->'entities') is distinct from 'array'
            ) t group by key order by 2 desc, 1`,
      );
      return rows.map((row) => ({ key: row.key, count: toNumber(row.count) }));
    },

    // Checkpoints

    async insertCheckpoint(db: DbOrTx, row: typeof auditCheckpoints.$inferInsert): Promise<AuditCheckpointRow> {
      const [inserted] = await db.insert(auditCheckpoints).values(row).returning();
      return inserted!;
    },

    async latestCheckpoint(db: DbOrTx): Promise<AuditCheckpointRow | undefined> {
      const rows = await db.select().from(auditCheckpoints).orderBy(desc(auditCheckpoints.seq), desc(auditCheckpoints.time)).limit(1);
      return rows[0];
    },

    /** The earliest checkpoint at or after `seq`: the one that anchors everything up to it. */
    async checkpointCovering(db: DbOrTx, seq: number): Promise<AuditCheckpointRow | undefined> {
      const rows = await db
        .select()
        .from(auditCheckpoints)
        .where(gte(auditCheckpoints.seq, seq))
        .orderBy(asc(auditCheckpoints.seq), asc(auditCheckpoints.time))
        .limit(1);
      return rows[0];
    },

    /** Newest first, keyset on (seq, time). */
    async listCheckpoints(db: DbOrTx, before: { seq: number; time: Date } | undefined, limit: number): Promise<AuditCheckpointRow[]> {
      const where = before
        ? sql`(${auditCheckpoints.seq}, ${auditCheckpoints.time}) < (${before.seq}, ${before.time.toISOString()}::timestamptz)`
        : undefined;
      return db.select().from(auditCheckpoints).where(where).orderBy(desc(auditCheckpoints.seq), desc(auditCheckpoints.time)).limit(limit);
    },

    /** Checkpoints whose seq falls in a range (the ones a verification of that range can check). */
    async checkpointsBetween(db: DbOrTx, afterSeq: number, throughSeq: number): Promise<AuditCheckpointRow[]> {
      return db
        .select()
        .from(auditCheckpoints)
        .where(and(gt(auditCheckpoints.seq, afterSeq), lte(auditCheckpoints.seq, throughSeq)))
        .orderBy(asc(auditCheckpoints.seq));
    },

    // Archives

    async latestArchive(db: DbOrTx): Promise<AuditArchiveRow | undefined> {
      const rows = await db.select().from(auditArchives).orderBy(desc(auditArchives.toSeq)).limit(1);
      return rows[0];
    },

    async listArchives(db: DbOrTx): Promise<AuditArchiveRow[]> {
      return db.select().from(auditArchives).orderBy(asc(auditArchives.toSeq));
    },

    async insertArchive(tx: Tx, row: typeof auditArchives.$inferInsert): Promise<void> {
      await tx.insert(auditArchives).values(row);
    },

    /**
     * Removes an archived prefix. No row-level rule lets a DELETE through (anything in the database, a setting or an
     * archive record, could be forged with the same rights), so this takes what only the tables' owner has: it
     * switches the append-only trigger off for its own transaction (DDL is transactional; the table is locked until
     * commit, so nothing else sees it off). See 010_audit_append_only.sql and docs/audit.md.
     */
    async deleteArchivedPrefix(tx: Tx, throughSeq: number): Promise<number> {
      await tx.execute(sql`alter table audit_events disable trigger audit_events_no_update_delete`);
      const deleted = await tx.delete(auditEvents).where(lte(auditEvents.seq, throughSeq)).returning({ seq: auditEvents.seq });
      await tx.execute(sql`alter table audit_events enable trigger audit_events_no_update_delete`);
      return deleted.length;
    },

    // Reports

    async insertReport(tx: DbOrTx, row: typeof auditReports.$inferInsert): Promise<AuditReportRow> {
      const [inserted] = await tx.insert(auditReports).values(row).returning();
      return inserted!;
    },

    async findReport(db: DbOrTx, id: string): Promise<AuditReportRow | undefined> {
      const rows = await db.select().from(auditReports).where(eq(auditReports.id, id)).limit(1);
      return rows[0];
    },

    /** Claims a pending report for completion; false when another attempt already finished it. */
    async lockPendingReport(tx: Tx, id: string): Promise<AuditReportRow | undefined> {
      const rows = await tx
        .select()
        .from(auditReports)
        .where(and(eq(auditReports.id, id), eq(auditReports.status, 'pending')))
        .for('update');
      return rows[0];
    },

    async completeReport(
      tx: Tx,
      id: string,
      values: { contentType: string; fileName: string; sizeBytes: number; sha256: string; completedAt: Date },
    ): Promise<void> {
      await tx
        .update(auditReports)
        .set({ status: 'ready', ...values, error: null })
        .where(eq(auditReports.id, id));
    },

    async failReport(db: DbOrTx, id: string, error: string, completedAt: Date): Promise<boolean> {
      const rows = await db
        .update(auditReports)
        .set({ status: 'failed', error, completedAt })
        .where(and(eq(auditReports.id, id), eq(auditReports.status, 'pending')))
        .returning({ id: auditReports.id });
      return rows.length > 0;
    },

    async deleteChunks(db: DbOrTx, reportId: string): Promise<void> {
      await db.delete(auditReportChunks).where(eq(auditReportChunks.reportId, reportId));
    },

    async insertChunk(db: DbOrTx, reportId: string, idx: number, data: Buffer): Promise<void> {
      await db.insert(auditReportChunks).values({ reportId, idx, data });
    },

    async chunk(db: DbOrTx, reportId: string, idx: number): Promise<Buffer | undefined> {
      const rows = await db
        .select({ data: auditReportChunks.data })
        .from(auditReportChunks)
        .where(and(eq(auditReportChunks.reportId, reportId), eq(auditReportChunks.idx, idx)))
        .limit(1);
      return rows[0]?.data;
    },
  };
}

export type AuditRepository = ReturnType<typeof createAuditRepository>;

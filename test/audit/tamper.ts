import { sql, type SQL } from 'drizzle-orm';
import { GENESIS_HASH, hashEvent, type StoredAuditEvent } from '../../src/modules/audit/audit.chain.js';
import { createAuditRepository } from '../../src/modules/audit/audit.repository.js';
import type { TestApp } from '../helpers/app.js';

const PROTECTED_TABLES = ['audit_events', 'audit_checkpoints', 'audit_chain_head', 'audit_archives'] as const;

/**
 * Plays an attacker with the tables' owner rights: switches the append-only triggers off, runs the statements,
 * switches them back on, all in one transaction.
 */
export async function tamper(t: TestApp, ...statements: SQL[]): Promise<void> {
  await t.app.infra.database.db.transaction(async (tx) => {
    for (const table of PROTECTED_TABLES) await tx.execute(sql.raw(`alter table ${table} disable trigger user`));
    for (const statement of statements) await tx.execute(statement);
    for (const table of PROTECTED_TABLES) await tx.execute(sql.raw(`alter table ${table} enable trigger user`));
  });
}

/** The stored events, as an attacker reads them: every column, the MAC included. */
export async function storedEvents(t: TestApp): Promise<StoredAuditEvent[]> {
  const repository = createAuditRepository();
  const head = await repository.head(t.app.infra.database.db);
  return repository.storedChainRange(t.app.infra.database.db, 0, Math.max(head.seq, 1_000_000));
}

/**
 * The strongest attacker without the audit keys: replaces the stored events by `transform(events)`, renumbered from
 * the first seq and with every prev_hash and hash recomputed (so the unkeyed chain is perfect), and moves the head to
 * the new last event. A MAC can only be copied, not computed: events keep the one they had (null for new ones).
 */
export async function rewriteChain(t: TestApp, transform: (events: StoredAuditEvent[]) => StoredAuditEvent[]): Promise<void> {
  const before = await storedEvents(t);
  const firstSeq = before[0]?.seq ?? 1;
  let prevHash = before[0]?.prev_hash ?? GENESIS_HASH;
  const after = transform(before.map((event) => ({ ...event, details: { ...event.details } }))).map((event, index) => {
    const renumbered = { ...event, seq: firstSeq + index, prev_hash: prevHash };
    renumbered.hash = hashEvent(prevHash, renumbered);
    prevHash = renumbered.hash;
    return renumbered;
  });
  const last = after[after.length - 1];
  await tamper(
    t,
    sql`delete from audit_events`,
    ...after.map(
      (e) => sql`insert into audit_events (id, seq, event_type, user_id, session_id, resource_type, resource_id, details, ip_address, user_agent, created_at, prev_hash, hash, mac)
                 values (${e.id}, ${e.seq}, ${e.event_type}, ${e.user_id}, ${e.session_id}, ${e.resource_type}, ${e.resource_id}, ${JSON.stringify(e.details)}::jsonb,
                         ${e.ip_address}, ${e.user_agent}, ${e.created_at}::timestamptz, ${e.prev_hash}, ${e.hash}, ${e.mac})`,
    ),
    sql`update audit_chain_head set seq = ${last?.seq ?? firstSeq - 1}, hash = ${last?.hash ?? prevHash}, created_at = ${last?.created_at ?? null}::timestamptz where id = 1`,
  );
}

/** Saves the audit tables; the returned function puts them back exactly (for a series of attacks on one app). */
export async function snapshotAudit(t: TestApp): Promise<() => Promise<void>> {
  const suffix = Math.random().toString(36).slice(2, 8);
  const saved = PROTECTED_TABLES.map((table) => ({ table, copy: `${table}_saved_${suffix}` }));
  await tamper(t, ...saved.map(({ table, copy }) => sql.raw(`create table ${copy} as select * from ${table}`)));
  return () =>
    tamper(
      t,
      ...saved.flatMap(({ table, copy }) => [sql.raw(`delete from ${table}`), sql.raw(`insert into ${table} select * from ${copy}`), sql.raw(`drop table ${copy}`)]),
    );
}

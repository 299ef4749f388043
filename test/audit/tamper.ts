import { sql, type SQL } from 'drizzle-orm';
import type { TestApp } from '../helpers/app.js';

/**
 * Plays an attacker with database rights: switches the append-only triggers off, runs the statements, switches them
 * back on, all in one transaction.
 */
export async function tamper(t: TestApp, ...statements: SQL[]): Promise<void> {
  await t.app.infra.database.db.transaction(async (tx) => {
    await tx.execute(sql`alter table audit_events disable trigger user`);
    await tx.execute(sql`alter table audit_checkpoints disable trigger user`);
    for (const statement of statements) await tx.execute(statement);
    await tx.execute(sql`alter table audit_events enable trigger user`);
    await tx.execute(sql`alter table audit_checkpoints enable trigger user`);
  });
}

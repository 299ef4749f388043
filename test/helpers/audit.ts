import { sql } from 'drizzle-orm';
import { queryRows } from '../../src/db/client.js';
import type { TestApp } from './app.js';

export interface AuditRow {
  seq: number;
  event_type: string;
  user_id: string | null;
  session_id: string | null;
  resource_id: string | null;
  details: Record<string, unknown>;
}

/** The audit trail's rows of one event type, oldest first. */
export async function auditEvents(t: TestApp, eventType: string): Promise<AuditRow[]> {
  return queryRows<AuditRow>(
    t.app.infra.database.db,
    sql`SELECT seq, event_type, user_id, session_id, resource_id, details FROM audit_events WHERE event_type = ${eventType} ORDER BY seq`,
  );
}

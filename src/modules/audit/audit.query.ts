import type { Db } from '../../db/client.js';
import { NotFoundError, ValidationError, type FieldError } from '../../lib/errors.js';
import { decodeCursor, DEFAULT_PAGE_SIZE, toPage, type Page } from '../../lib/pagination.js';
import { hasPermission, type Actor } from '../auth/permissions.js';
import type { AuditEvent } from './audit.chain.js';
import { isAuditEventType } from './audit.events.js';
import type { AuditRepository, EventFilter } from './audit.repository.js';
import { presentEvent } from './audit.service.js';

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
const DAY_MS = 86_400_000;

/**
 * Parses a period bound: an ISO-8601 date-time with a zone (`2026-11-26T09:00:00Z`) or a calendar date
 * (`2026-11-26`, UTC). A date as the upper bound means the whole of that day.
 */
export function parseInstant(value: string | undefined, pointer: string, bound: 'from' | 'to'): Date | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const dateOnly = DATE_ONLY.test(text);
  if (!dateOnly && !DATE_TIME.test(text)) {
    throw new ValidationError('Invalid date', [{ pointer, detail: 'must be an ISO-8601 date (2026-11-26) or date-time with a zone (2026-11-26T09:00:00Z)' }]);
  }
  // Date rolls 2026-02-31 over to March; a real calendar day survives a round trip through Date.UTC.
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  const parsed = new Date(dateOnly ? `${text}T00:00:00.000Z` : text);
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day || Number.isNaN(parsed.getTime())) {
    throw new ValidationError('Invalid date', [{ pointer, detail: 'is not a real calendar date and time' }]);
  }
  // A date as the upper bound includes the whole day, up to its last millisecond.
  if (dateOnly && bound === 'to') return new Date(parsed.getTime() + DAY_MS - 1);
  return parsed;
}

export interface PeriodInput {
  from?: string;
  to?: string;
}

export function parsePeriod(input: PeriodInput, pointers: { from: string; to: string } = { from: '/from', to: '/to' }) {
  const errors: FieldError[] = [];
  let from: Date | undefined;
  let to: Date | undefined;
  try {
    from = parseInstant(input.from, pointers.from, 'from');
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    errors.push(...error.errors);
  }
  try {
    to = parseInstant(input.to, pointers.to, 'to');
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    errors.push(...error.errors);
  }
  if (errors.length > 0) throw new ValidationError('Invalid date', errors);
  if (from && to && from.getTime() > to.getTime()) {
    throw new ValidationError('Invalid period', [{ pointer: pointers.to, detail: 'must not be before from' }]);
  }
  return { from, to };
}

export interface ListEventsQuery extends PeriodInput {
  event_type?: string;
  user_id?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditStats {
  from: string | null;
  to: string | null;
  total: number;
  by_type: Record<string, number>;
  by_day: Record<string, number>;
  /** Keyed by user id; events without an acting user count under `anonymous`. */
  by_user: Record<string, number>;
}

const canReadAll = (actor: Actor) => hasPermission(actor.role, 'audit:read');

export interface AuditQueryDeps {
  db: Db;
  repository: AuditRepository;
}

/**
 * Reading the trail. MANAGER and ADMIN (audit:read) see every event; anyone else sees only events they acted in,
 * and another user's event is "not found".
 */
export function createAuditQueryService({ db, repository }: AuditQueryDeps) {
  function scopedFilter(actor: Actor, query: ListEventsQuery): EventFilter | null {
    if (query.event_type !== undefined && !isAuditEventType(query.event_type)) {
      throw new ValidationError('Invalid filter', [{ pointer: '/event_type', detail: 'is not a known audit event type' }]);
    }
    const { from, to } = parsePeriod(query);
    const filter: EventFilter = { eventType: query.event_type, from, to };
    if (query.user_id !== undefined) filter.userId = query.user_id.toLowerCase();
    if (!canReadAll(actor)) {
      // Asking for someone else's events is an empty answer, not an error that confirms they exist.
      if (filter.userId !== undefined && filter.userId !== actor.userId) return null;
      filter.userId = actor.userId;
    }
    return filter;
  }

  return {
    async listEvents(actor: Actor, query: ListEventsQuery): Promise<Page<AuditEvent>> {
      const filter = scopedFilter(actor, query);
      const limit = query.limit ?? DEFAULT_PAGE_SIZE;
      const cursor = decodeCursor(query.cursor, { seq: 'bigint' });
      if (filter === null) return { items: [], next_cursor: null };
      const rows = await repository.list(db, filter, cursor?.seq, limit + 1);
      return toPage(rows, limit, (row) => ({ seq: row.seq }), presentEvent);
    },

    /**
     * The trail of one document's content (searched, retrieved, cited, read, downloaded), newest first. The caller
     * (the documents module) has already decided who may see it; this only reads.
     */
    async documentAccess(documentId: string, query: { limit?: number; cursor?: string }, eventTypes: readonly string[]): Promise<Page<AuditEvent>> {
      const limit = query.limit ?? DEFAULT_PAGE_SIZE;
      const cursor = decodeCursor(query.cursor, { seq: 'bigint' });
      const rows = await repository.documentAccess(db, documentId, eventTypes, cursor?.seq, limit + 1);
      return toPage(rows, limit, (row) => ({ seq: row.seq }), presentEvent);
    },

    async getEvent(actor: Actor, id: string): Promise<AuditEvent> {
      const row = await repository.findById(db, id.toLowerCase());
      if (!row || (!canReadAll(actor) && row.userId !== actor.userId)) throw new NotFoundError('Audit event');
      return presentEvent(row);
    },

    async stats(actor: Actor, query: PeriodInput): Promise<AuditStats> {
      const filter = scopedFilter(actor, { from: query.from, to: query.to });
      const base = {
        from: filter?.from?.toISOString() ?? null,
        to: filter?.to?.toISOString() ?? null,
      };
      if (filter === null) return { ...base, total: 0, by_type: {}, by_day: {}, by_user: {} };
      const [byType, byDay, byUser] = await Promise.all([
        repository.countBy(db, 'event_type', filter),
        repository.countBy(db, 'day', filter),
        repository.countBy(db, 'user_id', filter),
      ]);
      const toRecord = (rows: { key: string | null; count: number }[]) =>
        Object.fromEntries(rows.map((row) => [row.key ?? 'anonymous', row.count]));
      return {
        ...base,
        total: byType.reduce((sum, row) => sum + row.count, 0),
        by_type: toRecord(byType),
        by_day: toRecord(byDay),
        by_user: toRecord(byUser),
      };
    },
  };
}

export type AuditQueryService = ReturnType<typeof createAuditQueryService>;

import { Type, type Static } from '@sinclair/typebox';
import { AUDIT_REPORT_FORMATS, AUDIT_REPORT_STATUSES } from '../../db/schema/audit.js';
import { MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE } from '../../lib/pagination.js';
import { AUDIT_EVENT_TYPES, type AuditEventType } from './audit.events.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const Hash = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256, lower-case hex' });

const PERIOD_BOUND =
  'ISO-8601 date-time with a zone (2026-11-26T09:00:00Z) or a date (2026-11-26, UTC). Bounds are inclusive; a date as `to` includes that whole day.';

export const EventTypeParam = Type.Unsafe<AuditEventType>({ type: 'string', enum: [...AUDIT_EVENT_TYPES], description: 'An audit event type' });

export const AuditEventSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    seq: Type.Integer({ minimum: 1 }),
    event_type: Type.String(),
    user_id: Nullable(Type.String({ format: 'uuid' })),
    session_id: Nullable(Type.String({ format: 'uuid' })),
    resource_type: Nullable(Type.String()),
    resource_id: Nullable(Type.String()),
    details: Type.Record(Type.String(), Type.Unknown()),
    ip_address: Nullable(Type.String()),
    user_agent: Nullable(Type.String()),
    created_at: Type.String({ format: 'date-time' }),
    prev_hash: Hash,
    hash: Hash,
  },
  { description: 'hash = sha256(prev_hash ‖ RFC 8785 canonical JSON of the other fields); see docs/audit.md' },
);

export const ListEventsQuery = Type.Object(
  {
    event_type: Type.Optional(EventTypeParam),
    user_id: Type.Optional(Type.String({ format: 'uuid' })),
    from: Type.Optional(Type.String({ description: PERIOD_BOUND })),
    to: Type.Optional(Type.String({ description: PERIOD_BOUND })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ListEventsQuery = Static<typeof ListEventsQuery>;

export const EventPage = Type.Object({ items: Type.Array(AuditEventSchema), next_cursor: Nullable(Type.String()) });

export const EventIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

export const StatsQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ description: PERIOD_BOUND })),
    to: Type.Optional(Type.String({ description: PERIOD_BOUND })),
  },
  { additionalProperties: false },
);

const Counts = (description: string) => Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description });

export const StatsResponse = Type.Object({
  from: Nullable(Type.String({ format: 'date-time' })),
  to: Nullable(Type.String({ format: 'date-time' })),
  total: Type.Integer({ minimum: 0 }),
  by_type: Counts('event type → count'),
  by_day: Counts('UTC day (YYYY-MM-DD) → count'),
  by_user: Counts('user id → count; events without an acting user count under "anonymous"'),
});

export const VerifyQuery = Type.Object(
  {
    from_seq: Type.Optional(Type.Integer({ minimum: 1 })),
    to_seq: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

export const VerifyResponse = Type.Object({
  valid: Type.Boolean(),
  checked: Type.Integer({ minimum: 0, description: 'events whose hash and link were recomputed' }),
  head_seq: Type.Integer({ minimum: 0 }),
  head_hash: Hash,
  first_invalid_seq: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
});

export const ReportBody = Type.Object(
  {
    from: Type.String({ description: PERIOD_BOUND }),
    to: Type.String({ description: PERIOD_BOUND }),
    format: Type.Union(AUDIT_REPORT_FORMATS.map((format) => Type.Literal(format))),
  },
  { additionalProperties: false },
);
export type ReportBody = Static<typeof ReportBody>;

export const ReportAccepted = Type.Object({ report_id: Type.String({ format: 'uuid' }) });

export const ReportStatus = Type.Object({
  report_id: Type.String({ format: 'uuid' }),
  status: Type.Union(AUDIT_REPORT_STATUSES.map((status) => Type.Literal(status))),
  format: Type.Union(AUDIT_REPORT_FORMATS.map((format) => Type.Literal(format))),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  created_at: Type.String({ format: 'date-time' }),
  completed_at: Nullable(Type.String({ format: 'date-time' })),
  error: Nullable(Type.String()),
});

export const CheckpointSchema = Type.Object({
  seq: Type.Integer({ minimum: 0 }),
  hash: Hash,
  time: Type.String({ format: 'date-time' }),
  key_id: Type.String({ description: 'first 16 hex digits of SHA-256 over the public key (DER SubjectPublicKeyInfo)' }),
  signature: Type.String({ description: 'base64 Ed25519 signature of the canonical JSON {"hash","key_id","seq","time"}' }),
});

export const CheckpointFileSchema = Type.Composite([CheckpointSchema, Type.Object({ public_key_pem: Type.String() })]);

export const CheckpointListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const CheckpointExportSchema = Type.Object({
  key_id: Type.String(),
  public_key_pem: Type.String({ description: 'Ed25519 public key (SPKI PEM) that verifies the signatures' }),
  items: Type.Array(CheckpointSchema),
  next_cursor: Nullable(Type.String()),
});

import { Type } from '@sinclair/typebox';
import { MultiLineText } from '../../lib/text-formats.js';
import { MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { REASON_MAX_LENGTH } from './approvals.service.js';

const Timestamp = Type.String({ format: 'date-time' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
const Uuid = Type.String({ format: 'uuid' });
const Status = Type.Union([Type.Literal('PENDING'), Type.Literal('APPROVED'), Type.Literal('REJECTED'), Type.Literal('EXPIRED')]);
const Decision = Type.Union([Type.Literal('APPROVED'), Type.Literal('REJECTED')]);

export const ApprovalIdParams = Type.Object({ id: Uuid });

export const ListApprovalsQuery = Type.Object(
  {
    status: Type.Optional(Status),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const DecideBody = Type.Object(
  {
    decision: Decision,
    reason: Type.Optional(Type.Union([MultiLineText({ maxLength: REASON_MAX_LENGTH }), Type.Null()])),
  },
  { additionalProperties: false },
);

export const ApprovalSchema = Type.Object({
  id: Uuid,
  status: Status,
  tool_id: Uuid,
  tool_name: Type.String(),
  tool_args: Type.Record(Type.String(), Type.Unknown(), { description: 'exactly the arguments that will run if approved' }),
  args_digest: Type.String({ description: 'SHA-256 of the canonical JSON (RFC 8785) of tool_args' }),
  requester_id: Uuid,
  requester: Type.Union(
    [Type.Object({ username: Type.String(), full_name: Type.Union([Type.String(), Type.Null()]) }), Type.Null()],
    { description: 'who asked (username and full name), for the approvers; null when that account no longer exists' },
  ),
  approvals_required: Type.Integer(),
  approver_role: Type.Union([Type.Literal('ANALYST'), Type.Literal('MANAGER'), Type.Literal('ADMIN')]),
  decisions: Type.Array(
    Type.Object({
      approver_id: Uuid,
      decision: Decision,
      reason: Type.Union([Type.String(), Type.Null()]),
      decided_at: Timestamp,
    }),
  ),
  execution_id: Uuid,
  session_id: Type.Union([Uuid, Type.Null()], { description: 'the chat session that asked, if any' }),
  tool_call_id: Type.Union([Type.String(), Type.Null()]),
  requested_at: Timestamp,
  decided_at: NullableTimestamp,
  expires_at: Timestamp,
  continued_at: NullableTimestamp,
});

export const ApprovalPage = Type.Object({ items: Type.Array(ApprovalSchema), next_cursor: Type.Union([Type.String(), Type.Null()]) });

/** Event types of the audit trail (CONTRACT "Audit"). Past tense or nouns of record; never renamed once written. */
export const AUDIT_EVENT_TYPES = [
  'USER_REGISTERED',
  'USER_CREATED',
  'LOGIN_SUCCEEDED',
  'LOGIN_FAILED',
  'LOGOUT',
  'TOKEN_REFRESHED',
  'TOKEN_REUSE_DETECTED',
  'SESSIONS_REVOKED',
  'PASSWORD_CHANGED',
  'USER_UPDATED',
  'USER_QUERY',
  'LLM_REQUEST',
  'PII_REDACTED',
  'TOOL_CALL_INITIATED',
  'TOOL_CALL_COMPLETED',
  'TOOL_CALL_FAILED',
  'APPROVAL_REQUESTED',
  'APPROVAL_DECISION',
  'APPROVAL_EXPIRED',
  'TOOL_REGISTERED',
  'TOOL_UPDATED',
  'TOOL_REMOVED',
  'VAULT_SECRET_CREATED',
  'VAULT_SECRET_ACCESSED',
  'VAULT_SECRET_UPDATED',
  'VAULT_SECRET_DELETED',
  'VAULT_KEY_ROTATED',
  'LLM_CONFIG_CHANGED',
  'SECURITY_ALERT',
  'REPORT_GENERATED',
  'NOTIFICATION_BROADCAST',
  'AUDIT_CHECKPOINT_SIGNED',
  'AUDIT_RANGE_ARCHIVED',
  'AUDIT_CHAIN_KEYED',
  'CHAT_SESSION_DELETED',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export function isAuditEventType(value: unknown): value is AuditEventType {
  return typeof value === 'string' && (AUDIT_EVENT_TYPES as readonly string[]).includes(value);
}

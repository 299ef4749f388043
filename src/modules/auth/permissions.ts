import { ROLES, type Role } from '../../db/schema/users.js';
import type { Label } from '../../lib/labels.js';

export { ROLES, type Role };

/** Roles are ordered: a role holds every permission of the roles below it (CONTRACT §4). */
const ROLE_RANK: Record<Role, number> = { ANALYST: 0, MANAGER: 1, ADMIN: 2 };

export const PERMISSION_MIN_ROLE = {
  chat: 'ANALYST',
  'notifications:own': 'ANALYST',
  'tools:execute': 'ANALYST',
  'approvals:request': 'ANALYST',
  'vault:list': 'ANALYST',
  'audit:own': 'ANALYST',
  'llm:read': 'ANALYST',
  'api_keys:own': 'ANALYST',
  'approvals:decide': 'MANAGER',
  'audit:read': 'MANAGER',
  'vault:reveal': 'MANAGER',
  'users:manage': 'ADMIN',
  'tools:manage': 'ADMIN',
  'llm:configure': 'ADMIN',
  'vault:manage': 'ADMIN',
  'audit:report': 'ADMIN',
  'notifications:broadcast': 'ADMIN',
  'documents:manage': 'ADMIN',
} as const satisfies Record<string, Role>;

export type Permission = keyof typeof PERMISSION_MIN_ROLE;

export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[minimum];
}

export function hasPermission(role: Role, permission: Permission): boolean {
  return roleAtLeast(role, PERMISSION_MIN_ROLE[permission]);
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The second factor as the per-request check saw it (absent for actors that are not request users). */
export interface ActorMfa {
  /** A confirmed TOTP factor exists. */
  enabled: boolean;
  /** The user's role is in MFA_REQUIRED_ROLES. */
  required: boolean;
  /** Last second-factor verification in this session (ms since the epoch), or null. */
  verifiedAt: number | null;
}

/** Who is acting: every service use case takes this first and checks access itself. */
export interface Actor {
  userId: string;
  username: string;
  role: Role;
  sessionId: string;
  /**
   * The highest label of document content the actor may read, current as of this request. Absent only for actors
   * built outside a request (jobs, the CLI); `effectiveClearance` then falls back to the role's default.
   */
  clearance?: Label;
  mfa?: ActorMfa;
  /** Set on a step-up route when a recent second-factor verification let the request through. */
  stepUpVerified?: boolean;
  /** The request was made with this API key (its user acts within the key's scopes). */
  apiKeyId?: string;
}

/** Where a request came from, for the audit trail. */
export interface RequestContext {
  ipAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  /** The API key the request was made with: every audit event of the request names it (`details.api_key_id`). */
  apiKeyId?: string;
}

export const SYSTEM_CONTEXT: RequestContext = { ipAddress: null, userAgent: null, requestId: null };

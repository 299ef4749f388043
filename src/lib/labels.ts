import type { Role } from '../db/schema/users.js';

/** Classification labels, ordered (CONTRACT §4, §7). A document carries one; a user's clearance is one. */
export const LABELS = ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'] as const;
export type Label = (typeof LABELS)[number];

const RANK: Record<Label, number> = { PUBLIC: 0, INTERNAL: 1, CONFIDENTIAL: 2, RESTRICTED: 3 };

export function labelRank(label: Label): number {
  return RANK[label];
}

export function isLabel(value: unknown): value is Label {
  return typeof value === 'string' && (LABELS as readonly string[]).includes(value);
}

/** True when content labelled `label` may be read with `clearance`. */
export function labelAtMost(label: Label, clearance: Label): boolean {
  return RANK[label] <= RANK[clearance];
}

export function higherLabel(a: Label, b: Label): Label {
  return RANK[a] >= RANK[b] ? a : b;
}

/**
 * The clearance a user holds until an administrator sets one: ANALYST INTERNAL, MANAGER and ADMIN CONFIDENTIAL.
 * RESTRICTED is only ever granted explicitly.
 */
export function defaultClearance(role: Role): Label {
  return role === 'ANALYST' ? 'INTERNAL' : 'CONFIDENTIAL';
}

/** A user's clearance: the one set for them, else their role's default. */
export function effectiveClearance(user: { role: Role; clearance?: Label | null }): Label {
  return user.clearance ?? defaultClearance(user.role);
}

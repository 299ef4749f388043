import { and, eq, inArray, or, sql, type SQL } from 'drizzle-orm';
import { documents, documentShares } from '../../db/schema/documents.js';
import { effectiveClearance, LABELS, labelAtMost, type Label } from '../../lib/labels.js';
import { hasPermission, type Actor } from '../auth/permissions.js';

/**
 * Who may read a document's content (text, chunks, file, search hits) — CONTRACT §7, in one place:
 * its owner; anyone else only when the label is at most their clearance AND the document is visible to the
 * organization or shared with them or their role. Everyone else is told it does not exist (404).
 *
 * The same rule is written twice below, once over a loaded row and once as SQL for queries that list or search;
 * `documents.policy.test.ts` checks that both agree on every combination.
 */
export interface DocumentAccessFacts {
  ownerId: string;
  label: Label;
  visibility: 'private' | 'organization';
  shares: readonly { userId: string | null; role: string | null }[];
}

export function clearanceOf(actor: Actor): Label {
  return actor.clearance ?? effectiveClearance({ role: actor.role });
}

export function canReadContent(actor: Actor, document: DocumentAccessFacts): boolean {
  if (document.ownerId === actor.userId) return true;
  if (!labelAtMost(document.label, clearanceOf(actor))) return false;
  return document.visibility === 'organization' || document.shares.some((share) => share.userId === actor.userId || share.role === actor.role);
}

/** Administrators (`documents:manage`) see and manage every document's metadata, never content above their clearance. */
export function canManageAll(actor: Actor): boolean {
  return hasPermission(actor.role, 'documents:manage');
}

export function canSeeMetadata(actor: Actor, document: DocumentAccessFacts): boolean {
  return canReadContent(actor, document) || canManageAll(actor);
}

/** Changing title, tags, visibility, label, shares, deleting and reindexing: the owner, or `documents:manage`. */
export function canManage(actor: Actor, document: Pick<DocumentAccessFacts, 'ownerId'>): boolean {
  return document.ownerId === actor.userId || canManageAll(actor);
}

/** The labels a clearance reads. */
export function readableLabels(clearance: Label): Label[] {
  return LABELS.filter((label) => labelAtMost(label, clearance));
}

/** `canReadContent` as a condition on `documents` (for lists now, and for search and retrieval). */
export function contentReadableSql(actor: Actor): SQL {
  return or(
    eq(documents.ownerId, actor.userId),
    and(
      inArray(documents.label, readableLabels(clearanceOf(actor))),
      or(
        eq(documents.visibility, 'organization'),
        sql`exists (select 1 from ${documentShares} where ${documentShares.documentId} = ${documents.id} and (${documentShares.userId} = ${actor.userId} or ${documentShares.role} = ${actor.role}))`,
      ),
    ),
  )!;
}

/** `canSeeMetadata` as a condition: undefined (everything) for administrators. */
export function metadataVisibleSql(actor: Actor): SQL | undefined {
  return canManageAll(actor) ? undefined : contentReadableSql(actor);
}

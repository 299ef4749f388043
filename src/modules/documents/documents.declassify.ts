import { isLabel, labelAtMost, labelRank, type Label } from '../../lib/labels.js';
import { roleAtLeast, type Actor, type Role } from '../auth/permissions.js';
import { ToolRunError, type BuiltinTool } from '../tools/index.js';
import { clearanceOf } from './documents.policy.js';
import type { DocumentsService } from './documents.service.js';

export const DECLASSIFY_TOOL = 'declassify_document';

export interface DeclassificationDeps {
  documents: Pick<DocumentsService, 'applyDeclassification' | 'findForDeclassification'>;
  approverIds(approvalId: string): Promise<string[]>;
  accessOf(userId: string): Promise<{ role: Role; clearance: Label } | undefined>;
}

function argsOf(args: Record<string, unknown>): { documentId: string; from: Label; to: Label } {
  const { document_id: documentId, from, to } = args;
  if (typeof documentId !== 'string' || !isLabel(from) || !isLabel(to)) throw new ToolRunError('invalid_arguments', 'document_id, from and to are required');
  return { documentId, from, to };
}

/** Why an approver may not approve lowering a document from `from`: another MANAGER or ADMIN with clearance ≥ from. */
export function approverRefusal(approver: { role: Role; clearance: Label }, from: Label): string | null {
  if (!roleAtLeast(approver.role, 'MANAGER')) return 'a declassification is approved by a MANAGER or ADMIN';
  if (!labelAtMost(from, approver.clearance)) return `approving this declassification needs a clearance of at least ${from}`;
  return null;
}

/**
 * Declassification as a gated built-in tool: lowering a label is a call of `declassify_document` that the approval
 * engine holds until another MANAGER/ADMIN with enough clearance approves it (quorum, expiry, notifications, audit and
 * exactly-once come from the engine). The run checks again what the approval proves, so a tool row reconfigured to
 * skip approval still cannot lower a label.
 */
export function createDeclassifyTool(deps: DeclassificationDeps): { tool: BuiltinTool; guard: (approver: Actor, args: Record<string, unknown>) => Promise<string | null> } {
  const tool: BuiltinTool = {
    name: DECLASSIFY_TOOL,
    description: "Lowers a document's classification label once another MANAGER or ADMIN with enough clearance approves.",
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['document_id', 'from', 'to'],
      properties: {
        document_id: { type: 'string', format: 'uuid' },
        from: { type: 'string', enum: ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'] },
        to: { type: 'string', enum: ['PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'] },
      },
    },
    outputSchema: null,
    requiresApproval: true,
    options: [],
    seed: true,
    checkArgs(args) {
      const from = args.from;
      const to = args.to;
      if (isLabel(from) && isLabel(to) && labelRank(to) >= labelRank(from)) return [{ pointer: '/to', detail: 'must be lower than from' }];
      return [];
    },
    async run(args, context) {
      const { documentId, from, to } = argsOf(args);
      if (!context.approvalId) throw new ToolRunError('approval_required', 'a declassification runs only under an approval');
      const approvers = await deps.approverIds(context.approvalId);
      if (approvers.length === 0) throw new ToolRunError('approval_required', 'the approval has no approving decision');
      for (const approverId of approvers) {
        const access = approverId === context.userId ? undefined : await deps.accessOf(approverId);
        const refusal = access ? approverRefusal(access, from) : 'an approver is the requester or no longer active';
        if (refusal) throw new ToolRunError('approver_not_allowed', refusal);
      }
      const document = await deps.documents.applyDeclassification({ documentId, from, to, requesterId: context.userId, approvalId: context.approvalId, approvedBy: approvers });
      return { document_id: document.id, label: document.label };
    },
  };
  const guard = async (approver: Actor, args: Record<string, unknown>) => {
    const from = isLabel(args.from) ? args.from : 'RESTRICTED';
    return approverRefusal({ role: approver.role, clearance: clearanceOf(approver) }, from);
  };
  return { tool, guard };
}

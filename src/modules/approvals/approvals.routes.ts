import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApprovalIdParams, ApprovalPage, ApprovalSchema, DecideBody, ListApprovalsQuery } from './approvals.schemas.js';
import type { ApprovalService } from './approvals.service.js';

export interface ApprovalRoutesOptions {
  approvals: ApprovalService;
}

const tags = ['approvals'];

/** HTTP surface of the approval chain. */
export const approvalRoutes: FastifyPluginAsyncTypebox<ApprovalRoutesOptions> = async (app, { approvals }) => {
  app.get(
    '/approvals',
    {
      config: { requires: 'approvals:decide' },
      schema: {
        tags,
        summary: 'Approvals the caller may decide (pending ones unless ?status= says otherwise), newest first',
        querystring: ListApprovalsQuery,
        response: { 200: ApprovalPage },
      },
    },
    async (request) => approvals.listForApprover(app.requireActor(request), request.query),
  );

  app.get(
    '/approvals/my-requests',
    {
      config: { requires: 'approvals:request' },
      schema: { tags, summary: 'The caller’s own approval requests, newest first', querystring: ListApprovalsQuery, response: { 200: ApprovalPage } },
    },
    async (request) => approvals.listMine(app.requireActor(request), request.query),
  );

  app.get(
    '/approvals/:id',
    {
      config: { requires: 'approvals:request' },
      schema: { tags, summary: 'One approval (its requester and those who may decide it)', params: ApprovalIdParams, response: { 200: ApprovalSchema } },
    },
    async (request) => approvals.get(app.requireActor(request), request.params.id),
  );

  app.post(
    '/approvals/:id/decide',
    {
      config: { requires: 'approvals:decide', stepUp: true },
      schema: {
        tags,
        summary: 'Approve or reject (once per approver; never one’s own request). The quorum approves; any rejection rejects.',
        params: ApprovalIdParams,
        body: DecideBody,
        response: { 200: ApprovalSchema },
      },
    },
    async (request) => approvals.decide(app.requireActor(request), request.params.id, request.body, request.requestContext),
  );
};

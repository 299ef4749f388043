import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { CheckpointService } from './audit.checkpoints.js';
import type { AuditQueryService } from './audit.query.js';
import type { AuditReportService } from './audit.reports.js';
import {
  CheckpointExportSchema,
  CheckpointFileSchema,
  CheckpointListQuery,
  EventIdParams,
  EventPage,
  AuditEventSchema,
  ListEventsQuery,
  ReportAccepted,
  ReportBody,
  ReportStatus,
  StatsQuery,
  StatsResponse,
  VerifyQuery,
  VerifyResponse,
} from './audit.schemas.js';
import type { AuditVerifier } from './audit.verify.js';

export interface AuditRoutesOptions {
  queries: AuditQueryService;
  verifier: AuditVerifier;
  reports: AuditReportService;
  checkpoints: CheckpointService;
}

const tags = ['audit'];

export const auditRoutes: FastifyPluginAsyncTypebox<AuditRoutesOptions> = async (app, { queries, verifier, reports, checkpoints }) => {
  app.get(
    '/audit/events',
    {
      config: { requires: 'audit:own' },
      schema: {
        tags,
        summary: 'List audit events, newest first (MANAGER and ADMIN: all; others: their own)',
        querystring: ListEventsQuery,
        response: { 200: EventPage },
      },
    },
    async (request) => queries.listEvents(app.requireActor(request), request.query),
  );

  app.get(
    '/audit/events/:id',
    {
      config: { requires: 'audit:own' },
      schema: { tags, summary: 'One audit event', params: EventIdParams, response: { 200: AuditEventSchema } },
    },
    async (request) => queries.getEvent(app.requireActor(request), request.params.id),
  );

  app.get(
    '/audit/stats',
    {
      config: { requires: 'audit:own' },
      schema: { tags, summary: 'Event counts by type, by UTC day and by user', querystring: StatsQuery, response: { 200: StatsResponse } },
    },
    async (request) => queries.stats(app.requireActor(request), request.query),
  );

  app.get(
    '/audit/verify',
    {
      config: { requires: 'audit:read' },
      schema: {
        tags,
        summary: 'Recompute the hash chain (or a seq range) and report the first invalid event',
        querystring: VerifyQuery,
        response: { 200: VerifyResponse },
      },
    },
    async (request) => {
      const report = await verifier.verify({ fromSeq: request.query.from_seq, toSeq: request.query.to_seq });
      if (!report.valid) request.log.warn({ first_invalid_seq: report.first_invalid_seq, reason: report.reason }, 'audit chain verification failed');
      return report;
    },
  );

  app.post(
    '/audit/report',
    {
      config: { requires: 'audit:report' },
      schema: {
        tags,
        summary: 'Request a compliance report (generated in the background)',
        body: ReportBody,
        response: { 202: ReportAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await reports.request(app.requireActor(request), request.body);
      return reply.code(202).header('location', `${request.url.split('?')[0]}/${accepted.report_id}`).send(accepted);
    },
  );

  app.get(
    '/audit/report/:id',
    {
      config: { requires: 'audit:own' },
      schema: {
        tags,
        summary: 'The report document when ready (202 with its status while pending; 200 with status "failed" if it failed)',
        params: EventIdParams,
        response: {
          200: {
            description: 'The document (application/json, text/csv or application/pdf), or the status of a failed report',
            content: {
              'application/json': { schema: Type.Union([ReportStatus, Type.Object({}, { additionalProperties: true })]) },
              'text/csv': { schema: Type.String() },
              'application/pdf': { schema: Type.String({ format: 'binary' }) },
            },
          },
          202: ReportStatus,
        },
      },
    },
    async (request, reply) => {
      const result = await reports.read(app.requireActor(request), request.params.id);
      if (result.state !== 'ready') {
        if (result.state === 'pending') return reply.code(202).header('retry-after', '2').send(result.view);
        return reply.code(200).type('application/json').send(result.view);
      }
      return reply
        .code(200)
        .type(result.contentType)
        .header('content-disposition', `attachment; filename="${result.fileName}"`)
        .header('content-length', String(result.size))
        .header('cache-control', 'private, no-store')
        .send(result.body);
    },
  );

  app.post(
    '/audit/checkpoints',
    {
      config: { requires: 'audit:report' },
      schema: { tags, summary: 'Sign a checkpoint of the current chain head now', response: { 201: CheckpointFileSchema } },
    },
    async (request, reply) => {
      const actor = app.requireActor(request);
      return reply.code(201).send(await checkpoints.create(actor, request.requestContext));
    },
  );

  app.get(
    '/audit/checkpoints',
    {
      config: { requires: 'audit:read' },
      schema: {
        tags,
        summary: 'Export signed checkpoints (newest first) with the public key that verifies them',
        querystring: CheckpointListQuery,
        response: { 200: CheckpointExportSchema },
      },
    },
    async (request) => checkpoints.list(request.query),
  );
};

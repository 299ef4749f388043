import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ToolEngine } from './tool-engine.js';
import {
  CreateToolBody,
  ExecuteBody,
  ExecuteCompleted,
  ExecutePending,
  ExecutionPage,
  ExecutionParams,
  ExecutionSchema,
  ListQuery,
  ToolPage,
  ToolRefParams,
  ToolSchema,
  UpdateToolBody,
} from './tools.schemas.js';
import type { ToolRegistry } from './tools.service.js';

export interface ToolRoutesOptions {
  registry: ToolRegistry;
  engine: ToolEngine;
}

const tags = ['tools'];

/** HTTP surface of the tool registry and the execution pipeline. `{id}` is a tool's id or its unique name. */
export const toolRoutes: FastifyPluginAsyncTypebox<ToolRoutesOptions> = async (app, { registry, engine }) => {
  app.get(
    '/tools',
    {
      config: { requires: 'tools:execute' },
      schema: { tags, summary: 'Tools the caller may use (admins: every tool)', querystring: ListQuery, response: { 200: ToolPage } },
    },
    async (request) => registry.list(app.requireActor(request), request.query),
  );

  app.post(
    '/tools',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Register a tool (audited; its users are notified)', body: CreateToolBody, response: { 201: ToolSchema } },
    },
    async (request, reply) => {
      const tool = await registry.create(app.requireActor(request), request.body, request.requestContext);
      return reply.code(201).send(tool);
    },
  );

  app.get(
    '/tools/:id',
    {
      config: { requires: 'tools:execute' },
      schema: { tags, summary: 'One tool, by id or name', params: ToolRefParams, response: { 200: ToolSchema } },
    },
    async (request) => registry.get(app.requireActor(request), { idOrName: request.params.id }),
  );

  app.put(
    '/tools/:id',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Change a tool (a new version; audited)', params: ToolRefParams, body: UpdateToolBody, response: { 200: ToolSchema } },
    },
    async (request) => registry.update(app.requireActor(request), { idOrName: request.params.id }, request.body, request.requestContext),
  );

  app.delete(
    '/tools/:id',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Remove a tool (audited; its users are notified)', params: ToolRefParams, response: { 204: Type.Null() } },
    },
    async (request, reply) => {
      await registry.remove(app.requireActor(request), { idOrName: request.params.id }, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/tools/:id/execute',
    {
      config: { requires: 'tools:execute' },
      schema: {
        tags,
        summary: 'Run a tool: the result (200), or a pending approval (202) when the call needs one',
        params: ToolRefParams,
        body: ExecuteBody,
        response: { 200: ExecuteCompleted, 202: ExecutePending },
      },
    },
    async (request, reply) => {
      const outcome = await engine.execute(app.requireActor(request), { idOrName: request.params.id }, request.body.args, request.requestContext);
      if (outcome.status === 'pending_approval') return reply.code(202).send(outcome);
      return reply.code(200).send(outcome);
    },
  );

  app.get(
    '/tools/:id/executions',
    {
      config: { requires: 'tools:execute' },
      schema: {
        tags,
        summary: 'Executions of a tool, newest first (own ones; approvers and admins see all)',
        params: ToolRefParams,
        querystring: ListQuery,
        response: { 200: ExecutionPage },
      },
    },
    async (request) => engine.listExecutions(app.requireActor(request), { idOrName: request.params.id }, request.query),
  );

  app.get(
    '/tools/:id/executions/:execution_id',
    {
      config: { requires: 'tools:execute' },
      schema: { tags, summary: 'One execution with its arguments and result', params: ExecutionParams, response: { 200: ExecutionSchema } },
    },
    async (request) => engine.getExecution(app.requireActor(request), { idOrName: request.params.id }, request.params.execution_id),
  );
};

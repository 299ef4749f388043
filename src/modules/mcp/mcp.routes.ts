import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateMcpServerBody, ListQuery, McpServerPage, McpServerParams, McpServerSchema, UpdateMcpServerBody } from './mcp.schemas.js';
import type { McpService } from './mcp.service.js';

export interface McpRoutesOptions {
  service: McpService;
}

const tags = ['mcp'];

/** Registered MCP servers (CDSA as an MCP client). Their tools appear under /tools as `<server>.<tool>`. */
export const mcpRoutes: FastifyPluginAsyncTypebox<McpRoutesOptions> = async (app, { service }) => {
  app.post(
    '/mcp/servers',
    {
      config: { requires: 'tools:manage' },
      schema: {
        tags,
        summary: 'Register an MCP server and discover its tools (audited)',
        body: CreateMcpServerBody,
        response: { 201: McpServerSchema },
      },
    },
    async (request, reply) => reply.code(201).send(await service.create(app.requireActor(request), request.body, request.requestContext)),
  );

  app.get(
    '/mcp/servers',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Registered MCP servers with the state of their last sync', querystring: ListQuery, response: { 200: McpServerPage } },
    },
    async (request) => service.list(app.requireActor(request), request.query),
  );

  app.get(
    '/mcp/servers/:id',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'One MCP server', params: McpServerParams, response: { 200: McpServerSchema } },
    },
    async (request) => service.get(app.requireActor(request), request.params.id),
  );

  app.patch(
    '/mcp/servers/:id',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Change an MCP server (audited; a changed endpoint is synced again)', params: McpServerParams, body: UpdateMcpServerBody, response: { 200: McpServerSchema } },
    },
    async (request) => service.update(app.requireActor(request), request.params.id, request.body, request.requestContext),
  );

  app.delete(
    '/mcp/servers/:id',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Remove an MCP server and its tools (audited)', params: McpServerParams, response: { 204: Type.Null() } },
    },
    async (request, reply) => {
      await service.remove(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/mcp/servers/:id/sync',
    {
      config: { requires: 'tools:manage' },
      schema: { tags, summary: 'Discover the server’s tools again: new ones added, changed ones get a new version, gone ones removed', params: McpServerParams, response: { 200: McpServerSchema } },
    },
    async (request) => service.sync(app.requireActor(request), request.params.id, request.requestContext),
  );
};

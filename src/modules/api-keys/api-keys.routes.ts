import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiKeyPage, ApiKeyParams, CreateApiKeyBody, CreatedApiKeySchema, ListApiKeysQuery } from './api-keys.schemas.js';
import type { ApiKeysService } from './api-keys.service.js';

export interface ApiKeysRoutesOptions {
  apiKeys: ApiKeysService;
}

const tags = ['api-keys'];

export const apiKeysRoutes: FastifyPluginAsyncTypebox<ApiKeysRoutesOptions> = async (app, { apiKeys }) => {
  const own = { requires: 'api_keys:own' as const };

  app.post(
    '/api-keys',
    {
      config: own,
      schema: {
        tags,
        summary: 'Create an API key for yourself (the key is in this response only)',
        description:
          'The key (`cdsa_` and 256 random bits in base 62) is sent as `Authorization: Bearer cdsa_...` to /v1 and /mcp. ' +
          "It acts as its user, with the user's role and clearance at each request, limited by its scopes; it stops " +
          'working at once when revoked, expired or its user deactivated. Only a hash of it is stored.',
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKeySchema },
      },
    },
    async (request, reply) => {
      const created = await apiKeys.create(app.requireActor(request), request.body, request.requestContext);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/api-keys',
    {
      config: own,
      schema: {
        tags,
        summary: "Your API keys (with users:manage, another user's with ?user_id=), without the keys themselves",
        querystring: ListApiKeysQuery,
        response: { 200: ApiKeyPage },
      },
    },
    async (request) => {
      const { user_id, limit, cursor } = request.query;
      return apiKeys.list(app.requireActor(request), { userId: user_id, limit, cursor });
    },
  );

  app.delete(
    '/api-keys/:id',
    {
      config: own,
      schema: {
        tags,
        summary: 'Revoke an API key (yours, or anyone\'s with users:manage); it stops working at once',
        params: ApiKeyParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await apiKeys.revoke(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );
};

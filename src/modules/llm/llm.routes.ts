import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NotFoundError } from '../../lib/errors.js';
import {
  ListModelsQuery,
  LlmConfigSchema,
  LlmModelPage,
  LlmModelSchema,
  LlmStatusSchema,
  ModelIdParams,
  ModelRestOfPathParams,
  ModelTestResultSchema,
  ProviderKeyBody,
  ProviderParams,
  SaveModelBody,
  UpdateConfigBody,
} from './llm.schemas.js';
import type { LlmService } from './llm.service.js';

const tags = ['llm'];
const TEST_SUFFIX = '/test';

/** The rest-of-path spelling of a model id (`openai/gpt-4o-mini`). */
function modelIdFromPath(rest: string): string {
  return rest.replace(/^\/+/, '');
}

export const llmRoutes: FastifyPluginAsyncTypebox<{ llm: LlmService }> = async (app, { llm }) => {
  app.get(
    '/llm/models',
    {
      config: { requires: 'llm:read' },
      schema: {
        tags,
        summary: 'Registered and discovered models',
        description:
          'Registered models (llm_models) merged with what each configured provider lists now. A provider that does not ' +
          'answer within 2 s is left out of the listing (see GET /llm/status); the listing itself never fails for it.',
        querystring: ListModelsQuery,
        response: { 200: LlmModelPage },
      },
    },
    async (request) => llm.listModels(app.requireActor(request), request.query),
  );

  app.get(
    '/llm/models/:id',
    {
      config: { requires: 'llm:read' },
      schema: {
        tags,
        summary: 'One model',
        description: 'The id contains `/`: send it URL-encoded as one path segment (`/llm/models/openai%2Fgpt-4o-mini`).',
        params: ModelIdParams,
        response: { 200: LlmModelSchema },
      },
    },
    async (request) => llm.getModel(app.requireActor(request), request.params.id),
  );

  app.post(
    '/llm/models',
    {
      config: { requires: 'llm:configure' },
      schema: {
        tags,
        summary: 'Register, enable, disable or configure a model',
        description: 'Creates the registration (201) or changes the given fields of an existing one (200). Audited as LLM_CONFIG_CHANGED.',
        body: SaveModelBody,
        response: { 200: LlmModelSchema, 201: LlmModelSchema },
      },
    },
    async (request, reply) => {
      const { model, created } = await llm.saveModel(app.requireActor(request), request.body, request.requestContext);
      return reply.code(created ? 201 : 200).send(model);
    },
  );

  app.post(
    '/llm/models/:id/test',
    {
      config: { requires: 'llm:configure' },
      schema: {
        tags,
        summary: 'Test a model with a one-line prompt',
        description:
          'Sends a one-line prompt through the real provider client and measures the time to the first token and to the ' +
          'end. No body. The id is URL-encoded as in GET /llm/models/{id}. A provider that fails answers 200 with `ok: false` ' +
          'and the reason in `detail`; an unknown model is a 404.',
        params: ModelIdParams,
        response: { 200: ModelTestResultSchema },
      },
    },
    async (request) => llm.testModel(app.requireActor(request), request.params.id),
  );

  // The same two operations with the id written as the rest of the path (`/llm/models/openai/gpt-4o-mini[/test]`),
  // which path-parameter-based clients cannot express: accepted, not documented.
  app.get(
    '/llm/models/*',
    { config: { requires: 'llm:read' }, schema: { hide: true, params: ModelRestOfPathParams, response: { 200: LlmModelSchema } } },
    async (request) => llm.getModel(app.requireActor(request), modelIdFromPath(request.params['*'])),
  );
  app.post(
    '/llm/models/*',
    { config: { requires: 'llm:configure' }, schema: { hide: true, params: ModelRestOfPathParams, response: { 200: ModelTestResultSchema } } },
    async (request) => {
      const rest = modelIdFromPath(request.params['*']);
      if (!rest.endsWith(TEST_SUFFIX)) throw new NotFoundError('Route');
      return llm.testModel(app.requireActor(request), rest.slice(0, -TEST_SUFFIX.length));
    },
  );

  app.get(
    '/llm/config',
    {
      config: { requires: 'llm:read' },
      schema: { tags, summary: 'Gateway settings', response: { 200: LlmConfigSchema } },
    },
    async (request) => llm.getConfig(app.requireActor(request)),
  );

  app.put(
    '/llm/config',
    {
      config: { requires: 'llm:configure' },
      schema: {
        tags,
        summary: 'Change the default model, temperature, context budget, redaction policy or model access',
        description:
          'Only the fields given change; null returns a field to its default. `model_access` says which roles may use ' +
          'which models (a model not named is open to every role), on /api/v1/chat and the OpenAI-compatible /v1 alike. ' +
          'Audited as LLM_CONFIG_CHANGED.',
        body: UpdateConfigBody,
        response: { 200: LlmConfigSchema },
      },
    },
    async (request) => llm.updateConfig(app.requireActor(request), request.body, request.requestContext),
  );

  app.get(
    '/llm/status',
    {
      config: { requires: 'llm:read' },
      schema: {
        tags,
        summary: 'Per configured provider: reachable, latency, models, local',
        response: { 200: LlmStatusSchema },
      },
    },
    async (request) => llm.status(app.requireActor(request)),
  );

  app.put(
    '/llm/providers/:provider/credentials',
    {
      config: { requires: 'llm:configure' },
      schema: {
        tags,
        summary: "Store a provider's API key as a system credential",
        description:
          'The key is kept encrypted as the system credential `llm.<provider>.api_key`, apart from users\' vault secrets ' +
          '(never listed or revealed through /vault, rotated by /vault/rotate), and replaces the environment variable for ' +
          'this provider on every instance. It is never returned.',
        params: ProviderParams,
        body: ProviderKeyBody,
        response: { 200: LlmConfigSchema },
      },
    },
    async (request) =>
      llm.setProviderKey(app.requireActor(request), request.params.provider, request.body.api_key, request.requestContext),
  );

  app.delete(
    '/llm/providers/:provider/credentials',
    {
      config: { requires: 'llm:configure' },
      schema: {
        tags,
        summary: "Delete a provider's stored API key (the environment's applies again)",
        params: ProviderParams,
        response: { 200: LlmConfigSchema },
      },
    },
    async (request) => llm.removeProviderKey(app.requireActor(request), request.params.provider, request.requestContext),
  );
};

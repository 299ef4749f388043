import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CreateSecretBody,
  ListQuery,
  RevealedSecretSchema,
  RevealedSecretVersionSchema,
  RotateResponse,
  SecretIdParams,
  SecretPage,
  SecretSchema,
  SecretVersionPage,
  SecretVersionParams,
  UpdateSecretBody,
} from './vault.schemas.js';
import type { VaultService } from './vault.service.js';

export interface VaultRoutesOptions {
  vault: VaultService;
}

const tags = ['vault'];

/** HTTP surface of the vault. Server-side use of a secret (`useSecret`) is deliberately not exposed here. */
export const vaultRoutes: FastifyPluginAsyncTypebox<VaultRoutesOptions> = async (app, { vault }) => {
  app.get(
    '/vault/secrets',
    {
      config: { requires: 'vault:list' },
      schema: { tags, summary: 'List secrets (metadata only, never values)', querystring: ListQuery, response: { 200: SecretPage } },
    },
    async (request) => vault.list(app.requireActor(request), request.query),
  );

  app.post(
    '/vault/secrets',
    {
      config: { requires: 'vault:manage' },
      schema: { tags, summary: 'Store a new secret (encrypted at rest)', body: CreateSecretBody, response: { 201: SecretSchema } },
    },
    async (request, reply) => {
      const secret = await vault.create(app.requireActor(request), request.body, request.requestContext);
      return reply.code(201).send(secret);
    },
  );

  app.get(
    '/vault/secrets/:id',
    {
      config: { requires: 'vault:reveal', stepUp: true },
      schema: {
        tags,
        summary: 'Reveal a secret’s current value (audited; admins are notified)',
        params: SecretIdParams,
        response: { 200: RevealedSecretSchema },
      },
    },
    async (request, reply) => {
      const secret = await vault.reveal(app.requireActor(request), request.params.id, request.requestContext);
      return reply.header('cache-control', 'no-store').send(secret);
    },
  );

  app.put(
    '/vault/secrets/:id',
    {
      config: { requires: 'vault:manage' },
      schema: {
        tags,
        summary: 'Change a secret: a new value becomes a new version',
        params: SecretIdParams,
        body: UpdateSecretBody,
        response: { 200: SecretSchema },
      },
    },
    async (request) => vault.update(app.requireActor(request), request.params.id, request.body, request.requestContext),
  );

  app.delete(
    '/vault/secrets/:id',
    {
      config: { requires: 'vault:manage' },
      schema: {
        tags,
        summary: 'Delete a secret (soft; purged with its versions after the retention period)',
        params: SecretIdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await vault.remove(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/vault/secrets/:id/versions',
    {
      config: { requires: 'vault:list' },
      schema: {
        tags,
        summary: 'A secret’s versions, newest first (metadata only)',
        params: SecretIdParams,
        querystring: ListQuery,
        response: { 200: SecretVersionPage },
      },
    },
    async (request) => vault.listVersions(app.requireActor(request), request.params.id, request.query),
  );

  app.get(
    '/vault/secrets/:id/versions/:version',
    {
      config: { requires: 'vault:manage', stepUp: true },
      schema: {
        tags,
        summary: 'Reveal one version’s value (admins; audited, admins are notified)',
        params: SecretVersionParams,
        response: { 200: RevealedSecretVersionSchema },
      },
    },
    async (request, reply) => {
      const { id, version } = request.params;
      const revealed = await vault.revealVersion(app.requireActor(request), id, version, request.requestContext);
      return reply.header('cache-control', 'no-store').send(revealed);
    },
  );

  app.post(
    '/vault/rotate',
    {
      config: { requires: 'vault:manage' },
      schema: {
        tags,
        summary: 'Rewrap every secret and encrypted field to the active key (the first of ENCRYPTION_KEYS); resumable',
        response: { 200: RotateResponse },
      },
    },
    async (request) => {
      const result = await vault.rotate(app.requireActor(request), request.requestContext);
      return { rotated: result.rotated, key_id: result.key_id };
    },
  );
};

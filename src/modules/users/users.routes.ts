import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateUserBody, ListUsersQuery, UpdateUserBody, UserIdParams, UserPage, UserSchema } from './users.schemas.js';
import type { UsersService } from './users.service.js';

export interface UsersRoutesOptions {
  users: UsersService;
}

export const usersRoutes: FastifyPluginAsyncTypebox<UsersRoutesOptions> = async (app, { users }) => {
  const manage = { requires: 'users:manage' as const };

  app.get(
    '/users',
    {
      config: manage,
      schema: {
        tags: ['users'],
        summary: 'List users, filtered by role, status or a search term',
        querystring: ListUsersQuery,
        response: { 200: UserPage },
      },
    },
    async (request) => {
      const { role, is_active, q, limit, cursor } = request.query;
      return users.list(app.requireActor(request), { role, isActive: is_active, search: q, limit, cursor });
    },
  );

  app.post(
    '/users',
    {
      config: manage,
      schema: {
        tags: ['users'],
        summary: 'Create a user with any role (also when registration is closed)',
        body: CreateUserBody,
        response: { 201: UserSchema },
      },
    },
    async (request, reply) => {
      const { username, email, password, full_name, role } = request.body;
      // Granting a role above ANALYST is a role change: it needs a recent second factor (CONTRACT §4).
      const actor = role !== undefined && role !== 'ANALYST' ? app.requireStepUp(request) : app.requireActor(request);
      const user = await users.createUser(
        actor,
        { username, email, password, fullName: full_name, role: role ?? 'ANALYST' },
        { origin: 'admin', context: request.requestContext },
      );
      return reply.code(201).send(user);
    },
  );

  app.get(
    '/users/:id',
    {
      config: manage,
      schema: { tags: ['users'], summary: 'One user', params: UserIdParams, response: { 200: UserSchema } },
    },
    async (request) => users.get(app.requireActor(request), request.params.id),
  );

  app.patch(
    '/users/:id',
    {
      config: manage,
      schema: {
        tags: ['users'],
        summary: 'Change role, clearance or active status; deactivation ends every session at once',
        params: UserIdParams,
        body: UpdateUserBody,
        response: { 200: UserSchema },
      },
    },
    async (request) => {
      const { role, is_active, clearance } = request.body;
      // A role or clearance change needs a recent second factor (CONTRACT §4); activation changes do not.
      const actor = role !== undefined || clearance !== undefined ? app.requireStepUp(request) : app.requireActor(request);
      return users.update(actor, request.params.id, { role, isActive: is_active, clearance }, request.requestContext);
    },
  );

  app.post(
    '/users/:id/sessions/revoke',
    {
      config: manage,
      schema: {
        tags: ['users'],
        summary: "End every session of a user; their tokens stop working at once",
        params: UserIdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await users.revokeSessions(app.requireActor(request), request.params.id, request.requestContext);
      return reply.code(204).send(null);
    },
  );
};

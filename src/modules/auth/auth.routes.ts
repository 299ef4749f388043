import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { UserSchema } from '../users/users.schemas.js';
import type { UsersService } from '../users/users.service.js';
import type { AuthService } from './auth.service.js';
import type { FirstRunSetup } from './first-run-setup.js';
import { FirstRunSetupBody, LoginBody, LoginResponse, RefreshBody, RegisterBody, StreamTicketResponse, TokenPairSchema, UpdateMeBody } from './auth.schemas.js';

export interface AuthRoutesOptions {
  auth: AuthService;
  users: UsersService;
  setup: FirstRunSetup;
}

export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, { auth, users, setup }) => {
  // The stricter per-client limit of the unauthenticated entry points (CONTRACT: AUTH_RATE_LIMIT_REQUESTS).
  const strict = {
    public: true,
    rateLimit: { max: app.config.authRateLimitMax, timeWindow: app.config.rateLimit.periodSeconds * 1000 },
  };

  app.post(
    '/auth/register',
    {
      config: strict,
      schema: {
        tags: ['auth'],
        summary: 'Create an account (role ANALYST); 403 when registration is closed',
        body: RegisterBody,
        response: { 201: UserSchema },
      },
    },
    async (request, reply) => {
      const { username, email, password, full_name } = request.body;
      const user = await auth.register({ username, email, password, fullName: full_name }, request.requestContext);
      return reply.code(201).send(user);
    },
  );

  app.post(
    '/auth/setup',
    {
      config: strict,
      schema: {
        tags: ['auth'],
        summary: 'Create the first ADMIN with the one-time setup token the server printed at start-up',
        description:
          'Only while no administrator exists. The token is printed by a server that started without CDSA_ADMIN_* and ' +
          'without an administrator; it is spent by this call and is valid for that server process only. 403 for a wrong ' +
          'token, 409 once an administrator exists.',
        body: FirstRunSetupBody,
        response: { 201: UserSchema },
      },
    },
    async (request, reply) => {
      const { token, username, email, password, full_name } = request.body;
      const user = await setup.createFirstAdmin(token, { username, email, password, fullName: full_name }, request.requestContext);
      return reply.code(201).send(user);
    },
  );

  app.post(
    '/auth/login',
    {
      config: strict,
      schema: {
        tags: ['auth'],
        summary: 'Sign in with username or e-mail; one generic 401 for every failure',
        body: LoginBody,
        response: { 200: LoginResponse },
      },
    },
    async (request) => auth.login(request.body, request.requestContext),
  );

  app.post(
    '/auth/refresh',
    {
      config: strict,
      schema: {
        tags: ['auth'],
        summary: 'Exchange a refresh token (once) for a new pair; reuse ends the session',
        body: RefreshBody,
        response: { 200: TokenPairSchema },
      },
    },
    async (request) => auth.refresh(request.body.refresh_token, request.requestContext),
  );

  app.post(
    '/auth/logout',
    {
      config: { beforeMfaEnrollment: true },
      schema: {
        tags: ['auth'],
        summary: "End this session: its access and refresh tokens stop working at once",
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await auth.logout(app.requireActor(request), request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/stream-ticket',
    {
      schema: {
        tags: ['auth'],
        summary: 'A single-use ticket, valid 60 s, to open one server-sent event stream from a browser',
        response: { 200: StreamTicketResponse },
      },
    },
    async (request) => auth.issueStreamTicket(app.requireActor(request)),
  );

  app.get(
    '/auth/me',
    {
      config: { beforeMfaEnrollment: true },
      schema: { tags: ['auth'], summary: 'The signed-in user', response: { 200: UserSchema } },
    },
    async (request) => auth.me(app.requireActor(request)),
  );

  app.put(
    '/auth/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'Update own profile; a password change needs current_password and ends the other sessions',
        body: UpdateMeBody,
        response: { 200: UserSchema },
      },
    },
    async (request) => {
      const { full_name, email, current_password, new_password } = request.body;
      return users.updateProfile(
        app.requireActor(request),
        { fullName: full_name, email, currentPassword: current_password, newPassword: new_password },
        request.requestContext,
      );
    },
  );
};

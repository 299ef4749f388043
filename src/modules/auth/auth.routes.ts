import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { UserSchema } from '../users/users.schemas.js';
import type { UsersService } from '../users/users.service.js';
import type { AuthService } from './auth.service.js';
import type { FirstRunSetup } from './first-run-setup.js';
import { UnauthorizedError, ValidationError } from '../../lib/errors.js';
import {
  FirstRunSetupBody,
  LoginBody,
  LoginResponse,
  LogoutEverywhereResponse,
  RefreshBody,
  RegisterBody,
  StreamTicketResponse,
  TokenPairSchema,
  UpdateMeBody,
} from './auth.schemas.js';
import { clearRefreshCookie, moveRefreshTokenToCookie, readRefreshCookie, wantsCookie } from './refresh-cookie.js';

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
    async (request, reply) => {
      const result = await auth.login(request.body, request.requestContext);
      if (!wantsCookie(request) || !('refresh_token' in result)) return result;
      return moveRefreshTokenToCookie(request, reply, result, app.config.jwtRefreshTtl);
    },
  );

  app.post(
    '/auth/refresh',
    {
      config: strict,
      schema: {
        tags: ['auth'],
        summary: 'Exchange a refresh token (once) for a new pair; reuse ends the session',
        description:
          'The console sends no token in the body but its HttpOnly refresh cookie with the header X-CDSA-CSRF: 1; the ' +
          'new refresh token then comes back as the cookie (rotated like any other) and the body field is empty.',
        body: RefreshBody,
        response: { 200: TokenPairSchema },
      },
    },
    async (request, reply) => {
      const fromBody = request.body.refresh_token;
      if (fromBody !== undefined) {
        const pair = await auth.refresh(fromBody, request.requestContext);
        return wantsCookie(request) ? moveRefreshTokenToCookie(request, reply, pair, app.config.jwtRefreshTtl) : pair;
      }
      // A cookie is only honoured together with the custom header (CSRF): without it the body field is required.
      if (!wantsCookie(request)) {
        throw new ValidationError('refresh_token is required', [{ pointer: '/refresh_token', detail: 'is required' }]);
      }
      const fromCookie = readRefreshCookie(request);
      if (!fromCookie) throw new UnauthorizedError('No refresh cookie: sign in again');
      try {
        const pair = await auth.refresh(fromCookie, request.requestContext);
        return moveRefreshTokenToCookie(request, reply, pair, app.config.jwtRefreshTtl);
      } catch (error) {
        // A dead cookie is of no use to the browser: drop it so the console shows the sign-in form.
        clearRefreshCookie(request, reply);
        throw error;
      }
    },
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
      clearRefreshCookie(request, reply);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/logout-everywhere',
    {
      config: { beforeMfaEnrollment: true },
      schema: {
        tags: ['auth'],
        summary: "Sign out everywhere: every session of the caller ends at once, this one included",
        response: { 200: LogoutEverywhereResponse },
      },
    },
    async (request, reply) => {
      const revoked = await auth.logoutEverywhere(app.requireActor(request), request.requestContext);
      clearRefreshCookie(request, reply);
      return { sessions_revoked: revoked };
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

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { LoginResponse } from '../auth.schemas.js';
import { moveRefreshTokenToCookie, wantsCookie } from '../refresh-cookie.js';
import { OIDC_BINDING_COOKIE, OIDC_LOGIN_TTL_SECONDS, type OidcService } from './oidc.service.js';

const COOKIE_PATH = '/api/v1/auth/oidc';

function bindingCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === OIDC_BINDING_COOKIE) return value.join('=');
  }
  return undefined;
}

export const oidcRoutes: FastifyPluginAsyncTypebox<{ oidc: OidcService; secureCookie: boolean }> = async (app, { oidc, secureCookie }) => {
  const tags = ['auth'];
  const strict = {
    public: true,
    rateLimit: { max: app.config.authRateLimitMax, timeWindow: app.config.rateLimit.periodSeconds * 1000 },
  };
  const cookie = (value: string, maxAge: number) =>
    `${OIDC_BINDING_COOKIE}=${value}; Path=${COOKIE_PATH}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secureCookie ? '; Secure' : ''}`;

  app.get(
    '/auth/oidc/login',
    {
      config: strict,
      schema: { tags, summary: 'Start single sign-on: redirects to the identity provider (authorization code + PKCE)', response: { 302: Type.Null() } },
    },
    async (_request, reply) => {
      const { url, binding } = await oidc.startLogin();
      return reply.header('set-cookie', cookie(binding, OIDC_LOGIN_TTL_SECONDS)).header('cache-control', 'no-store').redirect(url, 302);
    },
  );

  app.get(
    '/auth/oidc/callback',
    {
      config: strict,
      schema: {
        tags,
        summary: "The identity provider's redirect back: a CDSA session like a password login (or an MFA challenge)",
        querystring: Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 4096 })),
        response: { 200: LoginResponse },
      },
    },
    async (request, reply) => {
      const result = await oidc.callback(request.query, bindingCookie(request), request.requestContext);
      void reply.header('set-cookie', cookie('', 0)).header('cache-control', 'no-store');
      // The console finishes the redirect itself (a fetch with X-CDSA-CSRF: 1) and keeps its refresh token as a cookie.
      if (wantsCookie(request) && 'refresh_token' in result) {
        return reply.send(moveRefreshTokenToCookie(request, reply, result, app.config.jwtRefreshTtl));
      }
      return reply.send(result);
    },
  );
};

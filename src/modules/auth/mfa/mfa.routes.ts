import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SessionResponse } from '../auth.schemas.js';
import { moveRefreshTokenToCookie, wantsCookie } from '../refresh-cookie.js';
import type { MfaService } from './mfa.service.js';
import { CodeBody, EnrollResponse, RecoveryCodesResponse, StepUpBody, StepUpResponse, VerifyBody } from './mfa.schemas.js';

export const mfaRoutes: FastifyPluginAsyncTypebox<{ mfa: MfaService }> = async (app, { mfa }) => {
  const tags = ['auth'];
  const noStore = { 'cache-control': 'no-store' };

  app.post(
    '/auth/mfa/totp/enroll',
    {
      config: { beforeMfaEnrollment: true },
      schema: { tags, summary: 'Start TOTP enrolment: a new secret, its otpauth:// URI and a QR code (pending until confirmed)', response: { 200: EnrollResponse } },
    },
    async (request, reply) => reply.headers(noStore).send(await mfa.enroll(app.requireActor(request))),
  );

  app.post(
    '/auth/mfa/totp/confirm',
    {
      config: { beforeMfaEnrollment: true },
      schema: { tags, summary: 'Confirm enrolment with a code; answers ten one-time recovery codes, shown once', body: CodeBody, response: { 200: RecoveryCodesResponse } },
    },
    async (request, reply) => reply.headers(noStore).send(await mfa.confirm(app.requireActor(request), request.body.code, request.requestContext)),
  );

  app.delete(
    '/auth/mfa/totp',
    {
      schema: { tags, summary: 'Remove the second factor (needs a fresh code from it)', body: CodeBody, response: { 204: Type.Null() } },
    },
    async (request, reply) => {
      await mfa.disable(app.requireActor(request), request.body.code, request.requestContext);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/auth/mfa/verify',
    {
      config: {
        public: true,
        rateLimit: { max: app.config.authRateLimitMax, timeWindow: app.config.rateLimit.periodSeconds * 1000 },
      },
      schema: {
        tags,
        summary: 'Second step of a login: the mfa_token from /auth/login with a code or a recovery code → tokens',
        body: VerifyBody,
        response: { 200: SessionResponse },
      },
    },
    async (request, reply) => {
      const { mfa_token, code, recovery_code } = request.body;
      const session = await mfa.verifyLogin(mfa_token, { code, recoveryCode: recovery_code }, request.requestContext);
      return wantsCookie(request) ? moveRefreshTokenToCookie(request, reply, session, app.config.jwtRefreshTtl) : session;
    },
  );

  app.post(
    '/auth/mfa/step-up',
    {
      schema: {
        tags,
        summary: 'A fresh code (or a recovery code) allows sensitive actions in this session for MFA_STEP_UP_SECONDS',
        body: StepUpBody,
        response: { 200: StepUpResponse },
      },
    },
    async (request) => {
      const { code, recovery_code } = request.body;
      return mfa.stepUp(app.requireActor(request), { code, recoveryCode: recovery_code }, request.requestContext);
    },
  );
};

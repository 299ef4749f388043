import { Type } from '@sinclair/typebox';
import { EmailSchema, FullNameSchema, NewPasswordSchema, PasswordSchema, UserSchema, UsernameSchema } from '../users/users.schemas.js';

export const RegisterBody = Type.Object(
  {
    username: UsernameSchema,
    email: EmailSchema,
    password: NewPasswordSchema,
    full_name: Type.Optional(FullNameSchema),
  },
  { additionalProperties: false },
);

export const FirstRunSetupBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 256, description: 'the one-time setup token the server printed at start-up' }),
    username: UsernameSchema,
    email: EmailSchema,
    password: PasswordSchema,
    full_name: Type.Optional(FullNameSchema),
  },
  { additionalProperties: false },
);

export const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 254, description: 'username or e-mail address' }),
    password: PasswordSchema,
  },
  { additionalProperties: false },
);

export const RefreshBody = Type.Object(
  {
    refresh_token: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description: 'required unless the console sends its refresh cookie with the header X-CDSA-CSRF: 1',
      }),
    ),
  },
  { additionalProperties: false },
);

export const LogoutEverywhereResponse = Type.Object({
  sessions_revoked: Type.Integer({ description: 'sessions of the caller that ended, this one included' }),
});

const RefreshTokenField = Type.String({
  description: 'empty when the request carried X-CDSA-CSRF: 1: the console gets it as an HttpOnly cookie instead',
});

export const TokenPairSchema = Type.Object({
  access_token: Type.String(),
  refresh_token: RefreshTokenField,
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'seconds until the access token expires' }),
});

export const SessionResponse = Type.Object({
  access_token: Type.String(),
  refresh_token: RefreshTokenField,
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'seconds until the access token expires' }),
  user: UserSchema,
});

export const MfaChallengeResponse = Type.Object({
  mfa_required: Type.Literal(true),
  mfa_token: Type.String({ description: 'short-lived and single use: send it with a code to POST /auth/mfa/verify' }),
  expires_in: Type.Integer({ description: 'seconds until the mfa_token expires' }),
});

/** Tokens, or — for a user with a second factor — a challenge to complete at POST /auth/mfa/verify. */
export const LoginResponse = Type.Union([SessionResponse, MfaChallengeResponse]);

export const StreamTicketResponse = Type.Object({
  ticket: Type.String({ description: 'single use; pass as ?ticket= when opening an EventSource' }),
  expires_in: Type.Integer(),
});

export const UpdateMeBody = Type.Object(
  {
    full_name: Type.Optional(Type.Union([FullNameSchema, Type.Null()])),
    email: Type.Optional(EmailSchema),
    current_password: Type.Optional(PasswordSchema),
    new_password: Type.Optional(NewPasswordSchema),
  },
  { additionalProperties: false },
);

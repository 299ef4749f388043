import { Type } from '@sinclair/typebox';

export const TotpCodeSchema = Type.String({ pattern: '^[0-9]{6}$', description: 'the 6-digit code the authenticator app shows now' });
export const RecoveryCodeSchema = Type.String({ minLength: 20, maxLength: 40, description: 'one of the recovery codes, each usable once' });

export const EnrollResponse = Type.Object({
  secret: Type.String({ description: 'base32 TOTP secret, for typing into an authenticator app' }),
  otpauth_uri: Type.String({ description: 'otpauth://totp/... URI (RFC 6238 parameters)' }),
  qr_data_url: Type.String({ description: 'the URI as a PNG QR code, data:image/png;base64,...' }),
});

export const CodeBody = Type.Object({ code: TotpCodeSchema }, { additionalProperties: false });

export const RecoveryCodesResponse = Type.Object({
  recovery_codes: Type.Array(Type.String(), { description: 'shown this once; only hashes are kept' }),
});

export const VerifyBody = Type.Object(
  {
    mfa_token: Type.String({ minLength: 1, maxLength: 200 }),
    code: Type.Optional(TotpCodeSchema),
    recovery_code: Type.Optional(RecoveryCodeSchema),
  },
  { additionalProperties: false },
);

export const StepUpBody = Type.Object(
  { code: Type.Optional(TotpCodeSchema), recovery_code: Type.Optional(RecoveryCodeSchema) },
  { additionalProperties: false },
);

export const StepUpResponse = Type.Object({
  mfa_verified_at: Type.String({ format: 'date-time' }),
  expires_in: Type.Integer({ description: 'seconds for which sensitive actions are allowed without another code' }),
});

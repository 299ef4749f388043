import { Type, type Static } from '@sinclair/typebox';
import { SingleLineText } from '../../lib/text-formats.js';
import { ROLES, type Role } from '../../db/schema/users.js';
import { effectiveClearance, LABELS, type Label } from '../../lib/labels.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../lib/pagination.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../auth/passwords.js';

export const RoleSchema = Type.Union(
  ROLES.map((role) => Type.Literal(role)),
  { description: 'ANALYST < MANAGER < ADMIN' },
);

/** What leaves the server about a user: the presenter below lists exactly these fields. */
export const LabelSchema = Type.Union(
  LABELS.map((label) => Type.Literal(label)),
  { description: 'PUBLIC < INTERNAL < CONFIDENTIAL < RESTRICTED' },
);

export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    username: Type.String(),
    email: Type.String(),
    full_name: Type.Union([Type.String(), Type.Null()]),
    role: RoleSchema,
    clearance: { ...LabelSchema, description: 'the highest document label whose content this user may read' },
    is_active: Type.Boolean(),
    mfa_enabled: Type.Boolean({ description: 'a TOTP second factor is enrolled and confirmed' }),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    last_login_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type UserView = Static<typeof UserSchema>;

export interface PresentableUser {
  id: string;
  username: string;
  email: string;
  fullName: string | null;
  role: Role;
  clearance: Label | null;
  isActive: boolean;
  mfaEnabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  lastLoginAt: Date | null;
}

export function presentUser(row: PresentableUser): UserView {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    full_name: row.fullName,
    role: row.role,
    clearance: effectiveClearance(row),
    is_active: row.isActive,
    mfa_enabled: row.mfaEnabled,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_login_at: row.lastLoginAt ? row.lastLoginAt.toISOString() : null,
  };
}

export const UsernameSchema = Type.String({
  minLength: 3,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
  description: 'letters, digits, `_`, `.`, `-`; starts with a letter or digit',
});
export const EmailSchema = Type.String({ format: 'email', maxLength: 254 });
export const FullNameSchema = SingleLineText({ minLength: 1, maxLength: 200 });
/** Length limits here give early 422s; the service applies the full password rules. */
export const PasswordSchema = Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH });

/** A password being set: the length rules are in the schema; the rest (not common, not the username) is checked on the server. */
export const NewPasswordSchema = Type.String({
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
  description: `${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters; not a common password, not the username or e-mail address`,
});

export const UserIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const ListUsersQuery = Type.Object(
  {
    role: Type.Optional(RoleSchema),
    is_active: Type.Optional(Type.Boolean()),
    q: Type.Optional(SingleLineText({ minLength: 1, maxLength: 200, description: 'substring of username, e-mail or full name' })),
    limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const UserPage = Type.Object({
  items: Type.Array(UserSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

export const CreateUserBody = Type.Object(
  {
    username: UsernameSchema,
    email: EmailSchema,
    password: NewPasswordSchema,
    full_name: Type.Optional(FullNameSchema),
    role: Type.Optional(RoleSchema),
  },
  { additionalProperties: false },
);

export const UpdateUserBody = Type.Object(
  {
    role: Type.Optional(RoleSchema),
    is_active: Type.Optional(Type.Boolean()),
    clearance: Type.Optional(LabelSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);

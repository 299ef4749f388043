import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hash, verify, type Algorithm } from '@node-rs/argon2';
import type { FieldError } from '../../lib/errors.js';

// The package's `Algorithm` is a const enum, which isolated modules cannot read; 2 is its Argon2id member.
const ARGON2ID = 2 as Algorithm.Argon2id;

/** OWASP Password Storage Cheat Sheet, argon2id minimum: 19 MiB, 2 iterations, 1 lane. */
export const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;
const CURRENT_PARAMS_PREFIX = `$argon2id$v=19$m=${ARGON2_OPTIONS.memoryCost},t=${ARGON2_OPTIONS.timeCost},p=${ARGON2_OPTIONS.parallelism}$`;

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 128;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/** False for a wrong password and for a hash that cannot be parsed (never throws on bad input). */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

/** Hashes made with weaker (older) parameters are upgraded at the next successful login. */
export function needsRehash(passwordHash: string): boolean {
  return !passwordHash.startsWith(CURRENT_PARAMS_PREFIX);
}

// src/modules/auth and dist/modules/auth both sit three levels below the package root; the list ships in src/data.
const COMMON_PASSWORDS_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'src',
  'data',
  'common-passwords.txt',
);

let commonPasswords: Set<string> | undefined;

/** The shipped list, lower-cased; `#` lines are comments. Loaded once, on first use. */
export function loadCommonPasswords(file = COMMON_PASSWORDS_FILE): Set<string> {
  if (commonPasswords && file === COMMON_PASSWORDS_FILE) return commonPasswords;
  const set = new Set<string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const entry = line.trim();
    if (entry && !entry.startsWith('#')) set.add(entry.toLowerCase());
  }
  if (file === COMMON_PASSWORDS_FILE) commonPasswords = set;
  return set;
}

export interface PasswordContext {
  username?: string;
  email?: string;
}

/** Length in code points, as a person counts characters (and as the JSON schema's maxLength counts them). */
function codePointLength(value: string): number {
  let count = 0;
  for (const _char of value) count += 1;
  return count;
}

/**
 * The password rules, as field errors at `pointer` (empty when acceptable). Checked by the service, so the API,
 * the CLI and the bootstrap admin all obey the same rules.
 */
export function checkPasswordPolicy(password: string, context: PasswordContext, pointer = '/password'): FieldError[] {
  const length = codePointLength(password);
  if (length < PASSWORD_MIN_LENGTH) {
    return [{ pointer, detail: `must be at least ${PASSWORD_MIN_LENGTH} characters long` }];
  }
  if (length > PASSWORD_MAX_LENGTH) {
    return [{ pointer, detail: `must be at most ${PASSWORD_MAX_LENGTH} characters long` }];
  }
  const lowered = password.toLowerCase();
  const email = context.email?.toLowerCase();
  if (
    (context.username && lowered === context.username.toLowerCase()) ||
    (email && (lowered === email || lowered === email.split('@')[0]))
  ) {
    return [{ pointer, detail: 'must not be the same as the username or e-mail address' }];
  }
  if (loadCommonPasswords().has(lowered)) {
    return [{ pointer, detail: 'is too common: it appears in a list of frequently used passwords; choose another' }];
  }
  if (new Set(password).size < 4) {
    return [{ pointer, detail: 'must use at least 4 different characters' }];
  }
  return [];
}

import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ConflictError, ValidationError } from '../../lib/errors.js';
import { isRole, type Role } from '../../modules/auth/permissions.js';
import { lineOutput, processIO, type CommandIO } from '../command-io.js';
import { readStdin } from '../read-stdin.js';
import { runCommand } from '../dispatch.js';

interface Output {
  log(message: string): void;
  error(message: string): void;
}

export interface UsersCreateOptions {
  username: string;
  email: string;
  role: Role;
  fullName?: string;
}

function role(raw: string): Role {
  const upper = raw.toUpperCase();
  if (!isRole(upper)) throw new InvalidArgumentError('expected ANALYST, MANAGER or ADMIN');
  return upper;
}

/** 24 random bytes: 32 URL-safe characters, far beyond the password rules. */
export function generatePassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * `cdsa users create`: creates the user through the same service as the API (rules, audit). Returns the exit code.
 * A generated password is printed once; one read from standard input is never echoed.
 */
export async function runUsersCreate(app: FastifyInstance, options: UsersCreateOptions, password: string | undefined, out: Output): Promise<number> {
  const secret = password ?? generatePassword();
  try {
    const user = await app.users.createUser(
      null,
      { username: options.username, email: options.email, password: secret, fullName: options.fullName ?? null, role: options.role },
      { origin: 'cli' },
    );
    out.log(`created ${user.role} ${user.username} <${user.email}> (id ${user.id})`);
    if (password === undefined) out.log(`password: ${secret}`);
    return 0;
  } catch (error) {
    if (error instanceof ValidationError) {
      out.error(`cdsa: ${error.message}`);
      for (const issue of error.errors) out.error(`  ${issue.pointer.replace(/^\//, '')} ${issue.detail}`);
      return 1;
    }
    if (error instanceof ConflictError) {
      out.error(`cdsa: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

export type UsersCreateArgs = UsersCreateOptions & { password?: string };

/** Where the database is: create the user and report (the password travels only inside the admin socket). */
export async function usersCreateHandler(app: FastifyInstance, args: UsersCreateArgs, io: CommandIO): Promise<number> {
  const out = lineOutput(io);
  const { password, ...options } = args;
  try {
    return await runUsersCreate(app, options, password, out);
  } finally {
    await out.flush();
  }
}

export function registerUsersCommand(program: Command): void {
  const users = program.command('users').description('user accounts');
  users
    .command('create')
    .description('create a user (any role), whatever REGISTRATION_MODE says; prints a generated password unless --password-stdin')
    .requiredOption('--username <name>', 'login name')
    .requiredOption('--email <address>', 'e-mail address')
    .option('--role <role>', 'ANALYST, MANAGER or ADMIN', role, 'ANALYST' as Role)
    .option('--full-name <name>', 'display name')
    .option('--password-stdin', 'read the password from standard input instead of generating one')
    .action(async (options: UsersCreateOptions & { passwordStdin?: boolean }) => {
      const password = options.passwordStdin ? await readStdin() : undefined;
      const args: UsersCreateArgs = { username: options.username, email: options.email, role: options.role, fullName: options.fullName, password };
      process.exitCode = await runCommand('users.create', args, processIO());
    });
}

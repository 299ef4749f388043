import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../config.js';
import { ROLES } from '../modules/auth/permissions.js';
import type { CommandIO } from './command-io.js';
import { auditHandlers } from './commands/audit.js';
import { documentsImportHandler } from './commands/documents.js';
import { LABELS } from '../lib/labels.js';
import { migrateHandler, migrateStandalone } from './commands/migrate.js';
import { usersCreateHandler } from './commands/users.js';
import { vaultRotateHandler } from './commands/vault.js';

/**
 * The CLI commands that need the database, by name. Each runs where the database is: in the `cdsa` process itself
 * (DATABASE_URL, or no server on DATA_DIR) or inside the server that holds DATA_DIR, reached through the admin socket.
 * Arguments travel as JSON either way and are checked against `args` here, on the side that runs the command.
 * To add a command: a handler `(app, args, io) => exit code`, its entry here, and a commander command that reads
 * files and options on the caller's side and calls runCommand (src/cli/dispatch.ts).
 */
export interface AdminCommand<S extends TSchema = TSchema> {
  args: S;
  run(app: FastifyInstance, args: Static<S>, io: CommandIO): Promise<number>;
  /** Runs without the app (and its secrets) when this process holds the database itself. */
  standalone?(config: AppConfig, args: Static<S>, io: CommandIO): Promise<number>;
}

function command<S extends TSchema>(definition: AdminCommand<S>): AdminCommand {
  return definition as unknown as AdminCommand;
}

const FileContent = Type.Object({ name: Type.String(), content: Type.String() }, { additionalProperties: false });
const SeqBound = Type.Optional(Type.Integer({ minimum: 1 }));
const Nothing = Type.Object({}, { additionalProperties: false });

export const ADMIN_COMMANDS: Readonly<Record<string, AdminCommand>> = {
  'users.create': command({
    args: Type.Object(
      {
        username: Type.String(),
        email: Type.String(),
        role: Type.Union(ROLES.map((role) => Type.Literal(role))),
        fullName: Type.Optional(Type.String()),
        password: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
    run: usersCreateHandler,
  }),
  'audit.verify': command({
    args: Type.Object(
      {
        checkpoints: Type.Array(FileContent),
        publicKeys: Type.Array(FileContent),
        sinkFiles: Type.Optional(Type.Array(Type.String())),
        fromSeq: SeqBound,
        toSeq: SeqBound,
      },
      { additionalProperties: false },
    ),
    run: auditHandlers.verify,
  }),
  'audit.export': command({
    args: Type.Object(
      { from: Type.Optional(Type.String()), to: Type.Optional(Type.String()), fromSeq: SeqBound, toSeq: SeqBound },
      { additionalProperties: false },
    ),
    run: auditHandlers.export,
  }),
  'audit.checkpoint': command({ args: Nothing, run: auditHandlers.checkpoint }),
  'audit.archive': command({
    args: Type.Object({ before: Type.String(), dir: Type.Optional(Type.String()) }, { additionalProperties: false }),
    run: auditHandlers.archive,
  }),
  'vault.rotate': command({
    args: Type.Object({ batchSize: Type.Integer({ minimum: 1, maximum: 100_000 }) }, { additionalProperties: false }),
    run: vaultRotateHandler,
  }),
  'documents.import': command({
    args: Type.Object(
      {
        paths: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 10_000 }),
        cwd: Type.Optional(Type.String()),
        owner: Type.Optional(Type.String()),
        label: Type.Optional(Type.Union(LABELS.map((value) => Type.Literal(value)))),
        tags: Type.Optional(Type.Array(Type.String(), { maxItems: 100 })),
        visibility: Type.Optional(Type.Union([Type.Literal('private'), Type.Literal('organization')])),
      },
      { additionalProperties: false },
    ),
    run: documentsImportHandler,
  }),
  migrate: command({ args: Nothing, run: migrateHandler, standalone: (config, _args, io) => migrateStandalone(config, io) }),
};

export class UnknownCommandError extends Error {}

/** The command and its checked arguments, or an error that says what is wrong. */
export function resolveAdminCommand(name: string, args: unknown): { command: AdminCommand; args: unknown } {
  const found = Object.hasOwn(ADMIN_COMMANDS, name) ? ADMIN_COMMANDS[name] : undefined;
  if (!found) throw new UnknownCommandError(`unknown command "${name}" (is the server older than this cdsa?)`);
  if (!Value.Check(found.args, args)) {
    const first = Value.Errors(found.args, args).First();
    throw new UnknownCommandError(`invalid arguments for ${name}: ${first ? `${first.path || '/'} ${first.message}` : 'rejected'}`);
  }
  return { command: found, args };
}

/** Runs a command inside a running app (the server's side of the admin socket). */
export async function runAdminCommand(app: FastifyInstance, name: string, args: unknown, io: CommandIO): Promise<number> {
  let resolved: ReturnType<typeof resolveAdminCommand>;
  try {
    resolved = resolveAdminCommand(name, args);
  } catch (error) {
    if (!(error instanceof UnknownCommandError)) throw error;
    await io.err(`cdsa: ${error.message}\n`);
    return 2;
  }
  return resolved.command.run(app, resolved.args, io);
}

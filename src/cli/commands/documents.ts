import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { AppError, ValidationError } from '../../lib/errors.js';
import { isLabel, type Label } from '../../lib/labels.js';
import type { Actor } from '../../modules/auth/permissions.js';
import { DOCUMENT_FORMATS } from '../../modules/documents/documents.formats.js';
import { SYSTEM_CONTEXT } from '../../modules/auth/permissions.js';
import { lineOutput, processIO, type CommandIO } from '../command-io.js';
import { runCommand } from '../dispatch.js';

interface Output {
  log(message: string): void;
  error(message: string): void;
}

export interface ImportOptions {
  label?: Label;
  owner?: string;
  tags?: string[];
  visibility?: 'private' | 'organization';
}

const SUPPORTED_EXTENSIONS: ReadonlySet<string> = new Set<string>(Object.values(DOCUMENT_FORMATS).flatMap((format) => [...format.extensions]));

/** The files to import: given files as they are; folders recursively, supported types only, hidden entries skipped. */
export async function collectFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  const walk = async (target: string, explicit: boolean): Promise<void> => {
    const info = await stat(target).catch((error: NodeJS.ErrnoException) => {
      if (explicit && (error.code === 'ENOENT' || error.code === 'EACCES')) throw new ValidationError(`cannot read ${target}: ${error.code}`);
      throw error;
    });
    if (info.isDirectory()) {
      for (const entry of (await readdir(target)).sort()) {
        if (!entry.startsWith('.')) await walk(path.join(target, entry), false);
      }
    } else if (info.isFile() && (explicit || SUPPORTED_EXTENSIONS.has(path.extname(target).slice(1).toLowerCase()))) {
      files.push(target);
    }
  };
  for (const target of paths) await walk(path.resolve(target), true);
  return files;
}

function progressBar(done: number, total: number): string {
  const width = 24;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

/**
 * `cdsa documents import`: each file goes through the same service as `POST /documents` (type sniffing, dedupe,
 * encryption, audit) and then through the same pipeline, run here so the command reports each outcome.
 * Returns the exit code: 1 when any file was refused or failed.
 */
export async function runDocumentsImport(app: FastifyInstance, paths: string[], options: ImportOptions, out: Output, cwd = process.cwd()): Promise<number> {
  const username = options.owner ?? app.config.admin?.username;
  if (!username) {
    out.error('cdsa: --owner is required (no CDSA_ADMIN_USERNAME to default to)');
    return 2;
  }
  const owner = await app.users.findActiveByUsername(username);
  if (!owner) {
    out.error(`cdsa: no active user named ${username}`);
    return 2;
  }
  // The command acts as the owner, without a login session.
  const actor: Actor = { userId: owner.id, username: owner.username, role: owner.role, clearance: owner.clearance, sessionId: '' };
  let files: string[];
  try {
    files = await collectFiles(paths.map((target) => path.resolve(cwd, target)));
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    out.error(`cdsa: ${error.message}`);
    return 2;
  }
  const started = performance.now();
  let failed = 0;
  let chunks = 0;
  for (const [index, file] of files.entries()) {
    const prefix = `${progressBar(index + 1, files.length)} ${path.relative(cwd, file) || file}`;
    try {
      const info = await stat(file);
      if (info.size > app.config.documents.maxBytes) throw new ValidationError(`larger than DOCUMENT_MAX_BYTES (${app.config.documents.maxBytes})`);
      const bytes = await readFile(file);
      const { created, document } = await app.documents.upload(actor, { filename: path.basename(file), bytes, label: options.label, tags: options.tags, visibility: options.visibility }, SYSTEM_CONTEXT);
      const processed = created || document.status !== 'indexed' ? await app.documents.processNow(document.id) : document;
      const final = processed ?? document;
      chunks += final.chunk_count;
      if (final.status === 'failed') {
        failed += 1;
        out.error(`${prefix}: failed: ${final.error ?? 'unknown error'}`);
      } else {
        out.log(`${prefix}: ${created ? final.status : 'already imported'} (${final.chunk_count} chunks, ${final.label}) ${final.id}`);
      }
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      failed += 1;
      out.error(`${prefix}: refused: ${error.message}`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  out.log(`imported ${files.length - failed} of ${files.length} files, ${chunks} chunks in ${seconds.toFixed(1)} s (${(files.length / Math.max(seconds, 0.001)).toFixed(1)} documents/s)`);
  return failed > 0 ? 1 : 0;
}

/** The `documents.import` admin command's arguments (src/cli/admin-commands.ts checks them). */
export interface DocumentsImportArgs extends ImportOptions {
  paths: string[];
  /** Where the operator ran the command, for the file names the progress lines show. */
  cwd?: string;
}

/** The admin command: runs in this process or inside the server holding DATA_DIR, its lines sent back as they come. */
export async function documentsImportHandler(app: FastifyInstance, args: DocumentsImportArgs, io: CommandIO): Promise<number> {
  const out = lineOutput(io);
  const { paths, cwd, ...options } = args;
  try {
    return await runDocumentsImport(app, paths, options, out, cwd);
  } finally {
    await out.flush();
  }
}

function label(raw: string): Label {
  const upper = raw.toUpperCase();
  if (!isLabel(upper)) throw new InvalidArgumentError('expected PUBLIC, INTERNAL, CONFIDENTIAL or RESTRICTED');
  return upper;
}

function tags(raw: string): string[] {
  return raw.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '');
}

function visibility(raw: string): 'private' | 'organization' {
  if (raw !== 'private' && raw !== 'organization') throw new InvalidArgumentError('expected private or organization');
  return raw;
}

export function registerDocumentsCommand(program: Command): void {
  const documents = program.command('documents').description('documents');
  documents
    .command('import')
    .description('import files and folders as documents of a user, through the same checks and pipeline as uploads')
    .argument('<paths...>', 'files or folders (folders: supported types, recursively)')
    .option('--label <label>', 'PUBLIC, INTERNAL (default), CONFIDENTIAL or RESTRICTED', label)
    .option('--owner <username>', 'the owner (default: CDSA_ADMIN_USERNAME)')
    .option('--tags <a,b>', 'comma-separated tags', tags)
    .option('--visibility <visibility>', 'private (default) or organization', visibility)
    .action(async (paths: string[], options: ImportOptions) => {
      // Paths travel absolute: on the embedded database the files are read by the server that holds DATA_DIR (the
      // same account: the admin socket is owner-only), with DATABASE_URL by this process.
      const args: DocumentsImportArgs = { paths: paths.map((target) => path.resolve(target)), cwd: process.cwd(), ...options };
      process.exitCode = await runCommand('documents.import', args, processIO());
    });
}

import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { once } from 'node:events';
import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../lib/errors.js';
import { verifyExportLines, writeWithBackpressure, type ExportRange, type ExportSummary, type OfflineVerifyReport } from '../../modules/audit/audit.export.js';
import { parsePeriod } from '../../modules/audit/audit.query.js';
import { verifyingKeyFromPem, type AuditVerifyingKey, type SignedCheckpoint } from '../../modules/audit/audit.signing.js';
import type { VerifyReport } from '../../modules/audit/audit.verify.js';
import { bufferIO, processIO, type CommandIO } from '../command-io.js';
import { runCommand } from '../dispatch.js';

/** Where command output goes; the process streams by default, a buffer in tests. */
export interface Output {
  write(text: string): void | Promise<void>;
}

const stdout: Output = { write: (text) => void process.stdout.write(text) };

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface CheckpointSource {
  checkpoints: SignedCheckpoint[];
  keys: AuditVerifyingKey[];
}

function isCheckpoint(value: unknown): value is SignedCheckpoint {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<SignedCheckpoint>;
  return (
    Number.isSafeInteger(candidate.seq) &&
    typeof candidate.hash === 'string' &&
    typeof candidate.time === 'string' &&
    typeof candidate.key_id === 'string' &&
    typeof candidate.signature === 'string'
  );
}

/** A file the operator named, read on the command line's side (the server holding DATA_DIR may not see it). */
export interface FileContent {
  name: string;
  content: string;
}

export function readFiles(files: string[], what: string): FileContent[] {
  return files.map((file) => {
    try {
      return { name: file, content: fs.readFileSync(file, 'utf8') };
    } catch (error) {
      throw new ValidationError(`cannot read ${what} ${file}: ${(error as Error).message}`);
    }
  });
}

/**
 * Parses checkpoint files: one checkpoint as `cdsa audit checkpoint` writes it, or the export of
 * `GET /audit/checkpoints`. A checkpoint can only add conditions the chain must meet, so the public key it carries is
 * trusted to check its own signature (an operator may also pass keys with --public-key).
 */
export function parseCheckpointFiles(files: FileContent[]): CheckpointSource {
  const checkpoints: SignedCheckpoint[] = [];
  const keys: AuditVerifyingKey[] = [];
  for (const { name: file, content } of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(content);
    } catch (error) {
      throw new ValidationError(`cannot read checkpoint file ${file}: ${(error as Error).message}`);
    }
    const record = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { public_key_pem?: unknown; items?: unknown };
    const items = Array.isArray(record.items) ? record.items : [parsed];
    if (!items.every(isCheckpoint)) throw new ValidationError(`${file} is not a checkpoint file`);
    checkpoints.push(...items);
    if (typeof record.public_key_pem === 'string') keys.push(verifyingKeyFromPem(record.public_key_pem));
  }
  return { checkpoints, keys };
}

export function readCheckpointFiles(files: string[]): CheckpointSource {
  return parseCheckpointFiles(readFiles(files, 'checkpoint file'));
}

export function parsePublicKeys(files: FileContent[]): AuditVerifyingKey[] {
  return files.map(({ content }) => verifyingKeyFromPem(content));
}

export function readPublicKeys(files: string[]): AuditVerifyingKey[] {
  return parsePublicKeys(readFiles(files, 'public key'));
}

async function* fileLines(file: string): AsyncGenerator<string> {
  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) yield line;
  } finally {
    lines.close();
    input.destroy();
  }
}

export interface VerifyCommandOptions {
  checkpoint: string[];
  publicKey: string[];
  /** Audit sink files (AUDIT_SINK_FILE) of every instance, compared with the database. */
  sink?: string[];
  fromSeq?: number;
  toSeq?: number;
  file?: string;
}

/** Verifies an export file with nothing but the file, the checkpoints and the keys (no database). */
export async function verifyExportFile(options: VerifyCommandOptions): Promise<OfflineVerifyReport> {
  const source = readCheckpointFiles(options.checkpoint);
  return verifyExportLines(fileLines(options.file!), { checkpoints: source.checkpoints, keys: [...source.keys, ...readPublicKeys(options.publicKey)] });
}

/** What `cdsa audit verify` sends to wherever the database is: the files' contents, not their paths. */
export interface VerifyDatabaseArgs {
  checkpoints: FileContent[];
  publicKeys: FileContent[];
  sinkFiles?: string[];
  fromSeq?: number;
  toSeq?: number;
}

/** Verifies the live chain in the database, against the stored checkpoints and any checkpoint files. */
export async function verifyDatabaseWith(app: FastifyInstance, args: VerifyDatabaseArgs): Promise<VerifyReport> {
  const source = parseCheckpointFiles(args.checkpoints);
  const extraKeys = [...source.keys, ...parsePublicKeys(args.publicKeys)];
  const verifier = extraKeys.length === 0 ? app.auditTrail.verifier : app.auditTrail.createVerifier(extraKeys);
  const sinkFiles = args.sinkFiles ?? [];
  for (const file of sinkFiles) {
    if (!fs.existsSync(file)) throw new ValidationError(`cannot read audit sink file ${file}`);
  }
  return verifier.verify({
    fromSeq: args.fromSeq,
    toSeq: args.toSeq,
    checkpoints: source.checkpoints,
    sinkFiles: sinkFiles.length > 0 ? sinkFiles : undefined,
  });
}

export function verifyDatabaseArgs(options: VerifyCommandOptions): VerifyDatabaseArgs {
  return {
    checkpoints: readFiles(options.checkpoint, 'checkpoint file'),
    publicKeys: readFiles(options.publicKey, 'public key'),
    // Sink files are read where the database is (they sit beside the instances): absolute, so any cwd works.
    sinkFiles: (options.sink ?? []).map((file) => path.resolve(file)),
    fromSeq: options.fromSeq,
    toSeq: options.toSeq,
  };
}

export async function verifyDatabase(app: FastifyInstance, options: VerifyCommandOptions): Promise<VerifyReport> {
  return verifyDatabaseWith(app, verifyDatabaseArgs(options));
}

export interface ExportCommandOptions {
  from?: string;
  to?: string;
  fromSeq?: number;
  toSeq?: number;
  output?: string;
}

export function exportRange(options: ExportCommandOptions): ExportRange {
  const period = parsePeriod({ from: options.from, to: options.to }, { from: '--from', to: '--to' });
  return { from: period.from, to: period.to, fromSeq: options.fromSeq, toSeq: options.toSeq };
}

/** Streams JSON Lines to the file (written under a temporary name, renamed when complete) or to standard output. */
export async function exportEvents(app: FastifyInstance, options: ExportCommandOptions, out: Output = stdout): Promise<ExportSummary> {
  const range = exportRange(options);
  if (!options.output) return app.auditTrail.exporter.exportTo(range, async (line) => out.write(line));
  const partial = `${options.output}.partial`;
  const stream = fs.createWriteStream(partial, { mode: 0o600 });
  try {
    const summary = await app.auditTrail.exporter.exportToStream(range, stream);
    stream.end();
    await once(stream, 'finish');
    fs.renameSync(partial, options.output);
    return summary;
  } catch (error) {
    stream.destroy();
    fs.rmSync(partial, { force: true });
    throw error;
  }
}

function report(out: Output, value: unknown): void | Promise<void> {
  return out.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function usageMessage(error: unknown): string {
  return `cdsa: ${(error as Error).message}${error instanceof ValidationError && error.errors.length > 0 ? `: ${error.errors.map((e) => `${e.pointer} ${e.detail}`).join('; ')}` : ''}\n`;
}

function failUsage(error: unknown): void {
  process.stderr.write(usageMessage(error));
  process.exitCode = 2;
}

/** Runs `task`, turning a refused argument (ValidationError) into exit code 2 with the reason on stderr. */
async function usageErrors(io: CommandIO, task: () => Promise<number>): Promise<number> {
  try {
    return await task();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    await io.err(usageMessage(error));
    return 2;
  }
}

export interface ExportArgs {
  from?: string;
  to?: string;
  fromSeq?: number;
  toSeq?: number;
}

/** The commands' halves that run where the database is (this process or the server holding DATA_DIR). */
export const auditHandlers = {
  async verify(app: FastifyInstance, args: VerifyDatabaseArgs, io: CommandIO): Promise<number> {
    return usageErrors(io, async () => {
      const result = await verifyDatabaseWith(app, args);
      await report({ write: (text) => io.out(text) }, result);
      return result.valid ? 0 : 1;
    });
  },

  async export(app: FastifyInstance, args: ExportArgs, io: CommandIO): Promise<number> {
    return usageErrors(io, async () => {
      await io.result(await exportEvents(app, args, { write: (text) => io.out(text) }));
      return 0;
    });
  },

  async checkpoint(app: FastifyInstance, _args: unknown, io: CommandIO): Promise<number> {
    const checkpoint = await app.auditTrail.checkpoints.create(null);
    await io.out(`${JSON.stringify(checkpoint, null, 2)}\n`);
    return 0;
  },

  async archive(app: FastifyInstance, args: { before: string; dir?: string }, io: CommandIO): Promise<number> {
    return usageErrors(io, async () => {
      const { from: before } = parsePeriod({ from: args.before }, { from: '--before', to: '--before' });
      const result = await app.auditTrail.exporter.archive({ before: before!, dir: args.dir ?? path.join(app.config.dataDir, 'audit-archive') });
      await report({ write: (text) => io.out(text) }, result);
      return result.status === 'chain_invalid' ? 1 : 0;
    });
  },
};

/** Writes the command's output to `file` (under a temporary name, renamed when complete) instead of stdout. */
function fileIO(file: string): { io: CommandIO; results: unknown[]; finish(ok: boolean): Promise<void> } {
  const partial = `${file}.partial`;
  const stream = fs.createWriteStream(partial, { mode: 0o600 });
  const results: unknown[] = [];
  return {
    results,
    io: {
      out: (text) => writeWithBackpressure(stream, text),
      err: processIO().err,
      async result(value) {
        results.push(value);
      },
    },
    async finish(ok) {
      if (!ok) {
        stream.destroy();
        fs.rmSync(partial, { force: true });
        return;
      }
      stream.end();
      await once(stream, 'finish');
      fs.renameSync(partial, file);
    },
  };
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('verify, export, checkpoint and archive the tamper-evident audit trail');

  audit
    .command('verify')
    .description('recompute the hash chain; exit 0 if it is intact, 1 if not (prints the report as JSON)')
    .option('--checkpoint <file>', 'a signed checkpoint file the chain must match (repeatable)', collect, [])
    .option('--public-key <file>', 'also trust this Ed25519 public key (PEM), e.g. a retired signing key (repeatable)', collect, [])
    .option('--sink <file>', "compare the database with an audit sink file (AUDIT_SINK_FILE); give every instance's file (repeatable)", collect, [])
    .option('--from-seq <n>', 'first event to verify', positiveInt)
    .option('--to-seq <n>', 'last event to verify', positiveInt)
    .option('--file <export.jsonl>', 'verify an export file offline instead of the database')
    .action(async (options: VerifyCommandOptions) => {
      try {
        if (options.file && (options.sink ?? []).length > 0) throw new ValidationError('--sink compares the database with the sink; it cannot be combined with --file');
        if (options.file) {
          const result = await verifyExportFile(options);
          await report(stdout, result);
          process.exitCode = result.valid ? 0 : 1;
          return;
        }
        process.exitCode = await runCommand('audit.verify', verifyDatabaseArgs(options), processIO());
      } catch (error) {
        failUsage(error);
      }
    });

  audit
    .command('export')
    .description('write events as JSON Lines (with prev_hash and hash), verifiable offline: see docs/audit.md')
    .option('--from <date>', 'period start (ISO date or date-time); the export covers the seq range holding the period')
    .option('--to <date>', 'period end (inclusive; a date means the whole day)')
    .option('--from-seq <n>', 'first event', positiveInt)
    .option('--to-seq <n>', 'last event', positiveInt)
    .option('--output <file>', 'write to this file instead of standard output')
    .action(async (options: ExportCommandOptions) => {
      try {
        exportRange(options);
        const args: ExportArgs = { from: options.from, to: options.to, fromSeq: options.fromSeq, toSeq: options.toSeq };
        if (!options.output) {
          process.exitCode = await runCommand('audit.export', args, processIO());
          return;
        }
        const target = fileIO(options.output);
        let code = 1;
        try {
          code = await runCommand('audit.export', args, target.io);
        } finally {
          await target.finish(code === 0);
        }
        if (code === 0) await report(stdout, { ...(target.results[0] as ExportSummary), file: path.resolve(options.output) });
        process.exitCode = code;
      } catch (error) {
        failUsage(error);
      }
    });

  audit
    .command('checkpoint')
    .description('sign a checkpoint of the current chain head and write it (with the public key) as JSON')
    .option('--output <file>', 'write to this file instead of standard output')
    .action(async (options: { output?: string }) => {
      try {
        if (!options.output) {
          process.exitCode = await runCommand('audit.checkpoint', {}, processIO());
          return;
        }
        const buffered = bufferIO();
        const code = await runCommand('audit.checkpoint', {}, { ...buffered, err: processIO().err });
        if (code === 0) fs.writeFileSync(options.output, buffered.stdout.join(''), { mode: 0o644 });
        process.exitCode = code;
      } catch (error) {
        failUsage(error);
      }
    });

  audit
    .command('archive')
    .description('retention: move events created before a date to a verifiable archive file, then remove them from the database')
    .requiredOption('--before <date>', 'archive events created before this date (ISO date or date-time)')
    .option('--dir <dir>', 'archive directory (default: DATA_DIR/audit-archive)')
    .action(async (options: { before: string; dir?: string }) => {
      try {
        parsePeriod({ from: options.before }, { from: '--before', to: '--before' });
        process.exitCode = await runCommand('audit.archive', { before: options.before, dir: options.dir && path.resolve(options.dir) }, processIO());
      } catch (error) {
        failUsage(error);
      }
    });
}

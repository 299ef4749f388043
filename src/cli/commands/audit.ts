import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { once } from 'node:events';
import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../lib/errors.js';
import { verifyExportLines, type ExportRange, type ExportSummary, type OfflineVerifyReport } from '../../modules/audit/audit.export.js';
import { parsePeriod } from '../../modules/audit/audit.query.js';
import { verifyingKeyFromPem, type AuditVerifyingKey, type SignedCheckpoint } from '../../modules/audit/audit.signing.js';
import type { VerifyReport } from '../../modules/audit/audit.verify.js';
import { withApp } from '../context.js';

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

/**
 * Reads checkpoint files: one checkpoint as `cdsa audit checkpoint` writes it, or the export of
 * `GET /audit/checkpoints`. A checkpoint can only add conditions the chain must meet, so the public key it carries is
 * trusted to check its own signature (an operator may also pass keys with --public-key).
 */
export function readCheckpointFiles(files: string[]): CheckpointSource {
  const checkpoints: SignedCheckpoint[] = [];
  const keys: AuditVerifyingKey[] = [];
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
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

export function readPublicKeys(files: string[]): AuditVerifyingKey[] {
  return files.map((file) => verifyingKeyFromPem(fs.readFileSync(file, 'utf8')));
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

/** Verifies the live chain in the database, against the stored checkpoints and any checkpoint files. */
export async function verifyDatabase(app: FastifyInstance, options: VerifyCommandOptions): Promise<VerifyReport> {
  const source = readCheckpointFiles(options.checkpoint);
  const extraKeys = [...source.keys, ...readPublicKeys(options.publicKey)];
  const verifier = extraKeys.length === 0 ? app.auditTrail.verifier : app.auditTrail.createVerifier(extraKeys);
  const sinkFiles = options.sink ?? [];
  for (const file of sinkFiles) {
    if (!fs.existsSync(file)) throw new ValidationError(`cannot read audit sink file ${file}`);
  }
  return verifier.verify({
    fromSeq: options.fromSeq,
    toSeq: options.toSeq,
    checkpoints: source.checkpoints,
    sinkFiles: sinkFiles.length > 0 ? sinkFiles : undefined,
  });
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

function failUsage(error: unknown): void {
  console.error(`cdsa: ${(error as Error).message}${error instanceof ValidationError && error.errors.length > 0 ? `: ${error.errors.map((e) => `${e.pointer} ${e.detail}`).join('; ')}` : ''}`);
  process.exitCode = 2;
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
        const result = options.file ? await verifyExportFile(options) : await withApp((app) => verifyDatabase(app, options));
        await report(stdout, result);
        process.exitCode = result.valid ? 0 : 1;
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
        const summary = await withApp((app) => exportEvents(app, options));
        if (options.output) await report(stdout, { ...summary, file: path.resolve(options.output) });
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
        const checkpoint = await withApp((app) => app.auditTrail.checkpoints.create(null));
        const text = `${JSON.stringify(checkpoint, null, 2)}\n`;
        if (options.output) fs.writeFileSync(options.output, text, { mode: 0o644 });
        else process.stdout.write(text);
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
        const { from: before } = parsePeriod({ from: options.before }, { from: '--before', to: '--before' });
        const result = await withApp((app) =>
          app.auditTrail.exporter.archive({ before: before!, dir: options.dir ?? path.join(app.config.dataDir, 'audit-archive') }),
        );
        await report(stdout, result);
        process.exitCode = result.status === 'chain_invalid' ? 1 : 0;
      } catch (error) {
        failUsage(error);
      }
    });
}

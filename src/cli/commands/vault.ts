import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { SYSTEM_CONTEXT } from '../../modules/auth/permissions.js';
import { KeyRotationIncompleteError, type KeyRotationResult } from '../../modules/vault/index.js';
import { DEFAULT_ROTATION_BATCH_SIZE } from '../../modules/vault/rotation.js';
import { lineOutput, processIO, type CommandIO } from '../command-io.js';
import { runCommand } from '../dispatch.js';

interface Output {
  log(message: string): void;
  error(message: string): void;
}

function positiveInteger(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100_000) {
    throw new InvalidArgumentError('expected an integer between 1 and 100000');
  }
  return Number(raw);
}

function describe(result: KeyRotationResult): string[] {
  return result.columns.map((column) => `  ${column.column}: ${column.rotated} rewrapped${column.failed > 0 ? `, ${column.failed} failed` : ''}`);
}

/** `cdsa vault rotate`; returns the exit code (1 when some values could not be rewrapped). */
export async function runVaultRotate(app: FastifyInstance, options: { batchSize: number }, out: Output): Promise<number> {
  try {
    const result = await app.vault.rotate(null, SYSTEM_CONTEXT, {
      batchSize: options.batchSize,
      onBatch: ({ column, rotated }) => out.log(`  ${column}: +${rotated}`),
    });
    out.log(`rotated ${result.rotated} value(s) to key ${result.key_id}`);
    for (const line of describe(result)) out.log(line);
    out.log('every stored value is now under the active key; older keys can be removed from ENCRYPTION_KEYS');
    return 0;
  } catch (error) {
    if (!(error instanceof KeyRotationIncompleteError)) throw error;
    out.error(`cdsa: ${error.message}`);
    for (const line of describe(error.result)) out.error(line);
    return 1;
  }
}

export async function vaultRotateHandler(app: FastifyInstance, args: { batchSize: number }, io: CommandIO): Promise<number> {
  const out = lineOutput(io);
  try {
    return await runVaultRotate(app, args, out);
  } finally {
    await out.flush();
  }
}

export function registerVaultCommand(program: Command): void {
  const vault = program.command('vault').description('the secrets vault and field-level encryption');
  vault
    .command('rotate')
    .description(
      'rewrap every secret and encrypted field to the active key (the first of ENCRYPTION_KEYS), in batches; ' +
        're-running continues an interrupted rotation. Restart every instance with the new ENCRYPTION_KEYS first.',
    )
    .option('--batch-size <rows>', 'rows rewrapped per transaction', positiveInteger, DEFAULT_ROTATION_BATCH_SIZE)
    .action(async (options: { batchSize: number }) => {
      process.exitCode = await runCommand('vault.rotate', { batchSize: options.batchSize }, processIO());
    });
}

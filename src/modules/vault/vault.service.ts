import { randomUUID } from 'node:crypto';
import type { Db, DbOrTx } from '../../db/client.js';
import { inUnitOfWork, withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import type { ValueFingerprinter } from '../../lib/crypto/hmac.js';
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { clampLimit, decodeCursor, toPage, type Page } from '../../lib/pagination.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, SYSTEM_CONTEXT, type Actor, type Permission, type RequestContext } from '../auth/permissions.js';
import { EncryptedDataError, type EncryptedColumn, type FieldEncryptionService } from './field-cipher.js';
import { rotateColumn, type ColumnRotation, type RotateOptions, type RotationLogger } from './rotation.js';
import { isSystemCredentialName, SYSTEM_CREDENTIAL_COMPONENTS } from './system-credential-names.js';
import type { SecretRow, SecretVersionMetadata, VaultRepository } from './vault.repository.js';

export const SECRET_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,128}$';
const SECRET_NAME = new RegExp(SECRET_NAME_PATTERN);
export const SECRET_VALUE_MAX_LENGTH = 65_536;
export const SECRET_DESCRIPTION_MAX_LENGTH = 1_000;
const PURGE_BATCH = 500;
const RESOURCE_TYPE = 'secret';

/** Where a secret version's ciphertext belongs: a copy in any other secret or version slot does not decrypt. */
export function secretAad(secretId: string, version: number): string {
  return `secrets:${secretId}:v${version}`;
}

/** The secret versions column, rotated like any registered column; `secrets.encrypted_value` is re-synced after. */
export const SECRET_VERSIONS_COLUMN: EncryptedColumn = {
  name: 'secret_versions.encrypted_value',
  table: 'secret_versions',
  idColumn: 'id',
  column: 'encrypted_value',
  aadColumns: ['secret_id', 'version'],
  aad: (row) => secretAad(String(row.secret_id), Number(row.version)),
};

export interface SecretView {
  id: string;
  name: string;
  description: string | null;
  version: number;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  last_accessed_at: string | null;
}

export interface RevealedSecret extends SecretView {
  value: string;
}

export interface SecretVersionView {
  version: number;
  is_current: boolean;
  created_by: string | null;
  created_at: string;
}

export interface RevealedSecretVersion extends SecretVersionView {
  secret_id: string;
  value: string;
}

export interface KeyRotationResult {
  rotated: number;
  key_id: string;
  failed: number;
  columns: ColumnRotation[];
}

/** The notifications module's fan-out to a role, as far as the vault needs it. */
export interface VaultNotifier {
  notifyRole(
    role: 'ADMIN',
    input: {
      type: 'VAULT_SECRET_ADDED' | 'VAULT_SECRET_ACCESSED' | 'SECURITY_ALERT';
      title: string;
      message: string;
      priority?: 'low' | 'normal' | 'high' | 'urgent';
      data?: Record<string, unknown>;
    },
    uow?: UnitOfWork,
  ): Promise<unknown>;
}

export interface VaultLogger extends RotationLogger {
  error(obj: object, msg: string): void;
}

export interface VaultServiceDeps {
  db: Db;
  repository: VaultRepository;
  audit: Pick<AuditRecorder, 'record' | 'recordMany' | 'recordStandalone'>;
  fieldCipher: FieldEncryptionService;
  fingerprinter: ValueFingerprinter;
  /** Resolved at call time: notifications are optional (absent in some deployments and unit tests). */
  notifier: () => VaultNotifier | undefined;
  /** How long a deleted secret is kept before the purge removes it. */
  retentionMs: number;
  logger?: VaultLogger;
  now?: () => Date;
}

/** Rotation was run but some values could not be opened; the old keys must stay configured. */
export class KeyRotationIncompleteError extends AppError {
  readonly status = 500;
  readonly title = 'Internal Server Error';
  constructor(readonly result: KeyRotationResult) {
    super(
      `Key rotation rewrapped ${result.rotated} value(s), but ${result.failed} could not be opened (altered, or under a key no longer configured) ` +
        'and are still under their old keys: keep every key in ENCRYPTION_KEYS and see the server log for the rows',
    );
  }
}

interface IntegrityFailure {
  secretId: string;
  secretName: string;
  version: number;
  code: EncryptedDataError['code'];
}

type OpenVersion = (secret: { id: string; name: string }, version: number, ciphertext: string) => string;

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

export function presentSecret(row: SecretRow): SecretView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    version: row.currentVersion,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_accessed_at: iso(row.lastAccessedAt),
  };
}

function presentVersion(row: SecretVersionMetadata, currentVersion: number): SecretVersionView {
  return {
    version: row.version,
    is_current: row.version === currentVersion,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
  };
}

function requirePermission(actor: Actor, permission: Permission): void {
  if (!hasPermission(actor.role, permission)) throw new ForbiddenError(`This action needs the ${permission} permission`);
}

function validateName(name: string): void {
  if (typeof name !== 'string' || !SECRET_NAME.test(name)) {
    throw new ValidationError('The secret name is invalid', [
      { pointer: '/name', detail: 'must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-"' },
    ]);
  }
  if (isSystemCredentialName(name)) {
    throw new ValidationError('The secret name is reserved', [
      { pointer: '/name', detail: `must not start with ${SYSTEM_CREDENTIAL_COMPONENTS.map((c) => `"${c}."`).join(' or ')}: reserved for the service's own credentials` },
    ]);
  }
}

function validateValue(value: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > SECRET_VALUE_MAX_LENGTH) {
    throw new ValidationError('The secret value is invalid', [
      { pointer: '/value', detail: `must be a non-empty string of at most ${SECRET_VALUE_MAX_LENGTH} characters` },
    ]);
  }
}

function validateDescription(description: string | null | undefined): void {
  if (description !== undefined && description !== null && description.length > SECRET_DESCRIPTION_MAX_LENGTH) {
    throw new ValidationError('The description is too long', [
      { pointer: '/description', detail: `must be at most ${SECRET_DESCRIPTION_MAX_LENGTH} characters` },
    ]);
  }
}

/** An audit event a person caused on one secret. */
function secretEvent(
  eventType: AuditEventInput['eventType'],
  actor: Actor,
  context: RequestContext,
  secretId: string,
  details: Record<string, unknown>,
): AuditEventInput {
  return { eventType, userId: actor.userId, sessionId: actor.sessionId, context, resourceType: RESOURCE_TYPE, resourceId: secretId, details };
}

/**
 * The secrets vault. Values leave it only through `reveal` (people with vault:reveal, audited, admins notified),
 * `revealVersion` (admins) and `useSecret` (server-side consumers, audited); they never appear in audit details,
 * logs or errors. Audit rows are written in the same transaction as the change or access they describe.
 */
export function createVaultService(deps: VaultServiceDeps) {
  const { db, repository, audit, fieldCipher, fingerprinter } = deps;
  const now = deps.now ?? (() => new Date());

  async function notifyAdmins(uow: UnitOfWork, input: Parameters<VaultNotifier['notifyRole']>[1]): Promise<void> {
    const notifier = deps.notifier();
    if (notifier) await notifier.notifyRole('ADMIN', input, uow);
  }

  /** A person saw a value: admins are told, and the access is audited with the value's fingerprint (never the value). */
  async function recordReveal(
    uow: UnitOfWork,
    actor: Actor,
    context: RequestContext,
    revealed: { secret: Pick<SecretRow, 'id' | 'name'>; version: number; value: string; via: 'reveal' | 'reveal_version'; title: string; message: string },
  ): Promise<void> {
    const { secret, version } = revealed;
    await notifyAdmins(uow, {
      type: 'VAULT_SECRET_ACCESSED',
      title: revealed.title,
      message: revealed.message,
      data: { secret_id: secret.id, secret_name: secret.name, version, accessed_by: actor.username },
    });
    await audit.record(
      uow.tx,
      secretEvent('VAULT_SECRET_ACCESSED', actor, context, secret.id, {
        secret_name: secret.name,
        version,
        via: revealed.via,
        value_hmac: fingerprinter.fingerprint(revealed.value),
      }),
    );
  }

  /** An integrity failure is a security event: recorded (and admins alerted) after the failed read has ended. */
  async function recordIntegrityAlert(failure: IntegrityFailure, actorId: string | null): Promise<void> {
    await withTransaction(
      db,
      async (uow) => {
        await notifyAdmins(uow, {
          type: 'SECURITY_ALERT',
          title: 'A vault secret failed its integrity check',
          message: `The stored value of the secret "${failure.secretName}" (version ${failure.version}) could not be decrypted; it may have been altered.`,
          priority: 'urgent',
          data: { secret_id: failure.secretId, secret_name: failure.secretName, version: failure.version },
        });
        await audit.record(uow.tx, {
          eventType: 'SECURITY_ALERT',
          userId: actorId,
          resourceType: RESOURCE_TYPE,
          resourceId: failure.secretId,
          details: { reason: 'vault_value_failed_integrity_check', secret_name: failure.secretName, version: failure.version, code: failure.code },
          context: SYSTEM_CONTEXT,
        });
      },
      deps.logger,
    ).catch((error: unknown) => deps.logger?.error({ err: error }, 'could not record a vault integrity alert'));
  }

  /**
   * Runs a read that decrypts secret versions. The alert for a value that fails to decrypt is written once the read
   * (and its transaction) is over, so it is kept although the read rolls back.
   */
  async function readingValues<T>(actorId: string | null, read: (open: OpenVersion) => Promise<T>): Promise<T> {
    let failure: IntegrityFailure | undefined;
    const open: OpenVersion = (secret, version, ciphertext) => {
      try {
        return fieldCipher.decrypt(ciphertext, secretAad(secret.id, version));
      } catch (error) {
        if (error instanceof EncryptedDataError) failure = { secretId: secret.id, secretName: secret.name, version, code: error.code };
        throw error;
      }
    };
    try {
      return await read(open);
    } catch (error) {
      if (failure) await recordIntegrityAlert(failure, actorId);
      throw error;
    }
  }

  async function requireLive(executor: DbOrTx, id: string, forUpdate = false): Promise<SecretRow> {
    const row = await repository.findLive(executor, id, { forUpdate });
    if (!row) throw new NotFoundError('Secret');
    return row;
  }

  async function rotateAll(options: RotateOptions = {}): Promise<KeyRotationResult> {
    const columns = [SECRET_VERSIONS_COLUMN, ...fieldCipher.encryptedColumns()];
    const results: ColumnRotation[] = [];
    for (const column of columns) {
      results.push(await rotateColumn(db, fieldCipher.cipher, column, options, deps.logger));
    }
    await repository.syncCurrentCiphertexts(db);
    return {
      rotated: results.reduce((sum, item) => sum + item.rotated, 0),
      failed: results.reduce((sum, item) => sum + item.failed, 0),
      key_id: fieldCipher.activeKeyId,
      columns: results,
    };
  }

  return {
    async create(
      actor: Actor,
      input: { name: string; value: string; description?: string | null },
      context: RequestContext,
      uow?: UnitOfWork,
    ): Promise<SecretView> {
      requirePermission(actor, 'vault:manage');
      validateName(input.name);
      validateValue(input.value);
      validateDescription(input.description);
      const id = randomUUID();
      const encryptedValue = fieldCipher.encrypt(input.value, secretAad(id, 1));
      return inUnitOfWork(
        db,
        uow,
        async (work) => {
          const row = await repository.insert(work.tx, {
            id,
            name: input.name,
            description: input.description ?? null,
            encryptedValue,
            createdBy: actor.userId,
            now: now(),
          });
          if (!row) throw new ConflictError(`A secret named "${input.name}" already exists`);
          await notifyAdmins(work, {
            type: 'VAULT_SECRET_ADDED',
            title: 'Vault secret added',
            message: `${actor.username} added the secret "${row.name}".`,
            data: { secret_id: id, secret_name: row.name, added_by: actor.username },
          });
          await audit.record(
            work.tx,
            secretEvent('VAULT_SECRET_CREATED', actor, context, id, { secret_name: row.name, version: 1, value_hmac: fingerprinter.fingerprint(input.value) }),
          );
          return presentSecret(row);
        },
        deps.logger,
      );
    },

    async list(actor: Actor, query: { limit?: number; cursor?: string }): Promise<Page<SecretView>> {
      requirePermission(actor, 'vault:list');
      const limit = clampLimit(query.limit);
      const after = decodeCursor(query.cursor, { name: 'string' });
      const rows = await repository.listLive(db, limit + 1, after?.name);
      return toPage(rows, limit, (row) => ({ name: row.name }), presentSecret);
    },

    /** The secret with its current value; audited as an access, admins notified. */
    async reveal(actor: Actor, id: string, context: RequestContext): Promise<RevealedSecret> {
      requirePermission(actor, 'vault:reveal');
      return readingValues(actor.userId, (open) =>
        withTransaction(
          db,
          async (uow) => {
            const row = await requireLive(uow.tx, id);
            const value = open(row, row.currentVersion, row.encryptedValue);
            const accessedAt = now();
            await repository.touch(uow.tx, row.id, accessedAt);
            await recordReveal(uow, actor, context, {
              secret: row,
              version: row.currentVersion,
              value,
              via: 'reveal',
              title: 'Vault secret revealed',
              message: `${actor.username} revealed the secret "${row.name}".`,
            });
            return { ...presentSecret({ ...row, lastAccessedAt: accessedAt }), value };
          },
          deps.logger,
        ),
      );
    },

    /** A new version when `value` is given (the old ones stay readable by admins); otherwise metadata only. */
    async update(
      actor: Actor,
      id: string,
      input: { value?: string; description?: string | null },
      context: RequestContext,
      uow?: UnitOfWork,
    ): Promise<SecretView> {
      requirePermission(actor, 'vault:manage');
      if (input.value === undefined && input.description === undefined) {
        throw new ValidationError('Nothing to update', [{ pointer: '/', detail: 'give a value, a description or both' }]);
      }
      if (input.value !== undefined) validateValue(input.value);
      validateDescription(input.description);
      return inUnitOfWork(
        db,
        uow,
        async (work) => {
          const current = await requireLive(work.tx, id, true);
          const at = now();
          let row: SecretRow;
          const details: Record<string, unknown> = { secret_name: current.name };
          if (input.value !== undefined) {
            const version = current.currentVersion + 1;
            row = await repository.addVersion(work.tx, {
              secretId: current.id,
              version,
              encryptedValue: fieldCipher.encrypt(input.value, secretAad(current.id, version)),
              createdBy: actor.userId,
              now: at,
              description: input.description,
            });
            Object.assign(details, { version, previous_version: current.currentVersion, value_hmac: fingerprinter.fingerprint(input.value) });
          } else {
            row = await repository.setDescription(work.tx, current.id, input.description ?? null, at);
            details.version = current.currentVersion;
          }
          details.description_changed = input.description !== undefined && input.description !== current.description;
          await audit.record(work.tx, secretEvent('VAULT_SECRET_UPDATED', actor, context, current.id, details));
          return presentSecret(row);
        },
        deps.logger,
      );
    },

    /** Soft delete: the name is free at once; the row and its versions are purged after the retention period. */
    async remove(actor: Actor, id: string, context: RequestContext, uow?: UnitOfWork): Promise<void> {
      requirePermission(actor, 'vault:manage');
      await inUnitOfWork(
        db,
        uow,
        async (work) => {
          const row = await requireLive(work.tx, id, true);
          const at = now();
          await repository.softDelete(work.tx, row.id, at);
          await audit.record(
            work.tx,
            secretEvent('VAULT_SECRET_DELETED', actor, context, row.id, {
              secret_name: row.name,
              version: row.currentVersion,
              purge_after: new Date(at.getTime() + deps.retentionMs).toISOString(),
            }),
          );
        },
        deps.logger,
      );
    },

    async listVersions(actor: Actor, id: string, query: { limit?: number; cursor?: string }): Promise<Page<SecretVersionView>> {
      requirePermission(actor, 'vault:list');
      const secret = await requireLive(db, id);
      const limit = clampLimit(query.limit);
      const before = decodeCursor(query.cursor, { version: 'integer' });
      const rows = await repository.listVersions(db, secret.id, limit + 1, before?.version);
      return toPage(rows, limit, (row) => ({ version: row.version }), (row) => presentVersion(row, secret.currentVersion));
    },

    /** Any version's value, for admins (vault:manage); audited and notified like a reveal. */
    async revealVersion(actor: Actor, id: string, version: number, context: RequestContext): Promise<RevealedSecretVersion> {
      requirePermission(actor, 'vault:manage');
      return readingValues(actor.userId, (open) =>
        withTransaction(
          db,
          async (uow) => {
            const secret = await requireLive(uow.tx, id);
            const row = await repository.findVersion(uow.tx, secret.id, version);
            if (!row) throw new NotFoundError('Secret version');
            const value = open(secret, row.version, row.encryptedValue);
            await repository.touch(uow.tx, secret.id, now());
            await recordReveal(uow, actor, context, {
              secret,
              version: row.version,
              value,
              via: 'reveal_version',
              title: 'Vault secret version revealed',
              message: `${actor.username} revealed version ${row.version} of the secret "${secret.name}".`,
            });
            return { ...presentVersion(row, secret.currentVersion), secret_id: secret.id, value };
          },
          deps.logger,
        ),
      );
    },

    /**
     * Server-side use of a secret's current value by name (a tool's auth header, a provider API key): never exposed
     * over HTTP, audited as an access by the system with `consumer` naming who used it.
     */
    async useSecret(name: string, options: { consumer?: string; userId?: string | null } = {}): Promise<string> {
      return readingValues(null, (open) =>
        withTransaction(
          db,
          async (uow) => {
            const row = await repository.findLiveByName(uow.tx, name);
            if (!row) throw new NotFoundError('Secret');
            const value = open(row, row.currentVersion, row.encryptedValue);
            await repository.touch(uow.tx, row.id, now());
            await audit.record(uow.tx, {
              eventType: 'VAULT_SECRET_ACCESSED',
              userId: options.userId ?? null,
              resourceType: RESOURCE_TYPE,
              resourceId: row.id,
              details: { secret_name: row.name, version: row.currentVersion, via: 'use', consumer: options.consumer ?? 'system' },
              context: SYSTEM_CONTEXT,
            });
            return value;
          },
          deps.logger,
        ),
      );
    },

    /**
     * Rewraps every secret version and every registered encrypted column to the active key, in batches; resumable.
     * `actor` is null for the operator's CLI. Throws KeyRotationIncompleteError when some values could not be opened.
     */
    async rotate(actor: Actor | null, context: RequestContext, options: RotateOptions = {}): Promise<KeyRotationResult> {
      if (actor) requirePermission(actor, 'vault:manage');
      const result = await rotateAll(options);
      const event: AuditEventInput = {
        eventType: 'VAULT_KEY_ROTATED',
        userId: actor?.userId ?? null,
        sessionId: actor?.sessionId ?? null,
        resourceType: 'encryption_key',
        resourceId: result.key_id,
        details: {
          rotated: result.rotated,
          failed: result.failed,
          key_id: result.key_id,
          columns: result.columns.map((column) => ({ name: column.column, rotated: column.rotated, failed: column.failed })),
          initiated_by: actor ? 'api' : 'cli',
        },
        context,
      };
      await audit.recordStandalone(event);
      if (result.failed > 0) throw new KeyRotationIncompleteError(result);
      return result;
    },

    /** Removes secrets deleted longer ago than the retention period; audited per secret. Idempotent. */
    async purgeDeleted(at: Date = now()): Promise<number> {
      const cutoff = new Date(at.getTime() - deps.retentionMs);
      let purged = 0;
      for (;;) {
        const removed = await db.transaction(async (tx) => {
          const rows = await repository.purgeDeletedBefore(tx, cutoff, PURGE_BATCH);
          await audit.recordMany(
            tx,
            rows.map((row) => ({
              eventType: 'VAULT_SECRET_DELETED' as const,
              resourceType: RESOURCE_TYPE,
              resourceId: row.id,
              details: { secret_name: row.name, purged: true },
              context: SYSTEM_CONTEXT,
            })),
          );
          return rows.length;
        });
        purged += removed;
        if (removed < PURGE_BATCH) return purged;
      }
    },
  };
}

export type VaultService = ReturnType<typeof createVaultService>;

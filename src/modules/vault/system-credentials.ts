import { randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.js';
import { inUnitOfWork, withTransaction, type UnitOfWork } from '../../db/unit-of-work.js';
import type { ValueFingerprinter } from '../../lib/crypto/hmac.js';
import { ForbiddenError } from '../../lib/errors.js';
import type { AuditEventInput, AuditRecorder } from '../audit/audit.service.js';
import { hasPermission, SYSTEM_CONTEXT, type Actor, type Permission, type RequestContext } from '../auth/permissions.js';
import { EncryptedDataError, type EncryptedColumn, type FieldEncryptionService } from './field-cipher.js';
import { SYSTEM_CREDENTIAL_COMPONENTS, type SystemCredentialComponent } from './system-credential-names.js';
import type { SystemCredentialsRepository } from './system-credentials.repository.js';
import { secretAad } from './vault.service.js';


const RESOURCE_TYPE = 'system_credential';

export function systemCredentialAad(id: string): string {
  return `system_credentials:${id}:value`;
}

export const SYSTEM_CREDENTIALS_COLUMN: EncryptedColumn = {
  name: 'system_credentials.encrypted_value',
  table: 'system_credentials',
  column: 'encrypted_value',
  aad: (row) => systemCredentialAad(row.id),
};


/** One component's view of its own credentials: it can neither see nor touch another component's. */
export interface ComponentCredentials {
  /** Stores a value under `name` (a new version when it exists); audited without the value. */
  set(actor: Actor, name: string, value: string, context: RequestContext, uow?: UnitOfWork): Promise<{ id: string; name: string; created: boolean }>;
  /** False when there was none. */
  remove(actor: Actor, name: string, context: RequestContext, uow?: UnitOfWork): Promise<boolean>;
  /** The current value, server-side only (audited as a use); undefined when none is stored. */
  use(name: string, options?: { consumer?: string }): Promise<string | undefined>;
}

export interface SystemCredentialsLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SystemCredentialsDeps {
  db: Db;
  repository: SystemCredentialsRepository;
  audit: Pick<AuditRecorder, 'record'>;
  fieldCipher: Pick<FieldEncryptionService, 'encrypt' | 'decrypt'>;
  fingerprinter: ValueFingerprinter;
  logger?: SystemCredentialsLogger;
  now?: () => Date;
}

/**
 * Credentials of the service itself (provider API keys), apart from users' secrets: no route lists or reveals them,
 * and each component reaches only its own namespace through `forComponent`. Rotation rewraps them with every other
 * encrypted column (SYSTEM_CREDENTIALS_COLUMN).
 */
export function createSystemCredentials(deps: SystemCredentialsDeps) {
  const { db, repository, audit, fieldCipher, fingerprinter } = deps;
  const now = deps.now ?? (() => new Date());

  function event(
    eventType: AuditEventInput['eventType'],
    actor: Actor | null,
    context: RequestContext,
    resource: { type: string; id: string },
    details: Record<string, unknown>,
  ): AuditEventInput {
    return { eventType, userId: actor?.userId ?? null, sessionId: actor?.sessionId ?? null, context, resourceType: resource.type, resourceId: resource.id, details };
  }

  /** Writes `value` under `name`: inserted, or a new version of the existing credential. */
  async function write(uow: UnitOfWork, component: string, name: string, value: string, actor: Actor | null, context: RequestContext, details: Record<string, unknown> = {}) {
    const at = now();
    const existing = await repository.findByName(uow.tx, name, { forUpdate: true });
    const valueHmac = fingerprinter.fingerprint(value);
    if (existing) {
      const version = existing.version + 1;
      const row = await repository.replaceValue(uow.tx, existing.id, { encryptedValue: fieldCipher.encrypt(value, systemCredentialAad(existing.id)), version, now: at });
      await audit.record(uow.tx, event('VAULT_SECRET_UPDATED', actor, context, { type: RESOURCE_TYPE, id: row.id }, { credential_name: name, component, version, value_hmac: valueHmac, ...details }));
      return { id: row.id, name, created: false };
    }
    const id = randomUUID();
    const row = await repository.insert(uow.tx, { id, name, component, encryptedValue: fieldCipher.encrypt(value, systemCredentialAad(id)), createdBy: actor?.userId ?? null, now: at });
    // Inserted concurrently by another transaction: this one's write becomes the next version.
    if (!row) return write(uow, component, name, value, actor, context, details);
    await audit.record(uow.tx, event('VAULT_SECRET_CREATED', actor, context, { type: RESOURCE_TYPE, id }, { credential_name: name, component, version: 1, value_hmac: valueHmac, ...details }));
    return { id, name, created: true };
  }

  function forComponent(component: SystemCredentialComponent, managePermission: Permission): ComponentCredentials {
    const own = (name: string): string => {
      if (!name.startsWith(`${component}.`)) throw new TypeError(`the ${component} component has no credential named ${name}`);
      return name;
    };
    const requireManage = (actor: Actor): void => {
      if (!hasPermission(actor.role, managePermission)) throw new ForbiddenError(`This action needs the ${managePermission} permission`);
    };
    return {
      async set(actor, name, value, context, uow) {
        requireManage(actor);
        return inUnitOfWork(db, uow, (work) => write(work, component, own(name), value, actor, context), deps.logger);
      },

      async remove(actor, name, context, uow) {
        requireManage(actor);
        return inUnitOfWork(db, uow, async (work) => {
          const row = await repository.findByName(work.tx, own(name), { forUpdate: true });
          if (!row) return false;
          await repository.remove(work.tx, row.id);
          await audit.record(work.tx, event('VAULT_SECRET_DELETED', actor, context, { type: RESOURCE_TYPE, id: row.id }, { credential_name: row.name, component, version: row.version }));
          return true;
        }, deps.logger);
      },

      async use(name, options = {}) {
        return withTransaction(db, async (uow) => {
          const row = await repository.findByName(uow.tx, own(name));
          if (!row) return undefined;
          const value = fieldCipher.decrypt(row.encryptedValue, systemCredentialAad(row.id));
          await repository.touch(uow.tx, row.id, now());
          await audit.record(
            uow.tx,
            event('VAULT_SECRET_ACCESSED', null, SYSTEM_CONTEXT, { type: RESOURCE_TYPE, id: row.id }, { credential_name: row.name, component, version: row.version, via: 'use', consumer: options.consumer ?? component }),
          );
          return value;
        }, deps.logger);
      },
    };
  }

  return {
    forComponent,

    /**
     * Start-up step: moves secrets an earlier version kept in the users' vault under a system namespace (`llm.*`,
     * e.g. `llm.openai.api_key`) into the system credentials, and deletes them there with all their versions. The
     * newer value wins when both exist. Idempotent and safe on several instances at once (the rows are locked).
     */
    async moveFromUserVault(): Promise<number> {
      let moved = 0;
      for (const component of SYSTEM_CREDENTIAL_COMPONENTS) {
        await withTransaction(db, async (uow) => {
          for (const secret of await repository.lockSecretsNamed(uow.tx, `${component}.`)) {
            const deleted = event('VAULT_SECRET_DELETED', null, SYSTEM_CONTEXT, { type: 'secret', id: secret.id }, { secret_name: secret.name, version: secret.currentVersion, moved_to: 'system_credentials' });
            if (secret.deletedAt === null) {
              let value: string;
              try {
                value = fieldCipher.decrypt(secret.encryptedValue, secretAad(secret.id, secret.currentVersion));
              } catch (error) {
                if (!(error instanceof EncryptedDataError)) throw error;
                deps.logger?.error({ secret_id: secret.id, secret_name: secret.name, code: error.code }, 'a system credential in the user vault could not be decrypted; it was left there');
                continue;
              }
              const current = await repository.findByName(uow.tx, secret.name, { forUpdate: true });
              if (!current || current.updatedAt < secret.updatedAt) {
                const written = await write(uow, component, secret.name, value, null, SYSTEM_CONTEXT, { moved_from_secret_id: secret.id });
                deleted.details = { ...deleted.details, credential_id: written.id };
              }
              moved += 1;
            }
            await repository.deleteSecret(uow.tx, secret.id);
            await audit.record(uow.tx, deleted);
          }
        }, deps.logger);
      }
      return moved;
    },
  };
}

export type SystemCredentials = ReturnType<typeof createSystemCredentials>;

import fp from 'fastify-plugin';
import { createFieldEncryptionService, type FieldEncryptionService } from './field-cipher.js';
import { registerVaultJobs } from './vault.jobs.js';
import { createVaultRepository } from './vault.repository.js';
import { vaultRoutes } from './vault.routes.js';
import { createSystemCredentials, SYSTEM_CREDENTIALS_COLUMN, type SystemCredentials } from './system-credentials.js';
import { createSystemCredentialsRepository } from './system-credentials.repository.js';
import { createVaultService, type VaultService } from './vault.service.js';
import { neighbour } from '../wiring.js';

export { EncryptedDataError, type EncryptedColumn, type EncryptedColumnRow, type FieldEncryptionService } from './field-cipher.js';
export { KeyRotationIncompleteError, type KeyRotationResult, type VaultService } from './vault.service.js';
export type { ComponentCredentials, SystemCredentials } from './system-credentials.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Field-level encryption for every module (chat content, tool arguments and results), rotated by the vault. */
    fieldCipher: FieldEncryptionService;
    vault: VaultService;
    /** The service's own credentials (provider API keys), apart from users' secrets; see forComponent. */
    systemCredentials: SystemCredentials;
  }
}

const DAY_MS = 86_400_000;

/**
 * The secrets vault and the field encryption service. Other modules register their encrypted columns on
 * `app.fieldCipher` while they are registered, so `POST /vault/rotate` and `cdsa vault rotate` rewrap them too.
 */
export const vaultModule = fp(
  async (app) => {
    const fieldCipher = createFieldEncryptionService(app.secrets.encryptionKeys, app.log);
    const vault = createVaultService({
      db: app.infra.database.db,
      repository: createVaultRepository(),
      audit: app.audit,
      fieldCipher,
      fingerprinter: app.audit,
      notifier: neighbour(app, 'notifications'),
      retentionMs: app.config.vaultRetentionDays * DAY_MS,
      logger: app.log,
    });
    const systemCredentials = createSystemCredentials({
      db: app.infra.database.db,
      repository: createSystemCredentialsRepository(),
      audit: app.audit,
      fieldCipher,
      fingerprinter: app.audit,
      logger: app.log,
    });
    fieldCipher.registerEncryptedColumn(SYSTEM_CREDENTIALS_COLUMN);
    app.decorate('fieldCipher', fieldCipher);
    app.decorate('vault', vault);
    app.decorate('systemCredentials', systemCredentials);

    const purge = registerVaultJobs(app.infra.jobs, vault);
    app.addHook('onReady', async () => {
      // Before the modules registered after this one (the LLM gateway) read their credentials.
      const moved = await systemCredentials.moveFromUserVault();
      if (moved > 0) app.log.warn({ moved }, 'moved system credentials out of the user vault');
      await purge.start();
    });

    app.apiV1.routes(vaultRoutes, { vault });
  },
  { name: 'module-vault', dependencies: ['infra', 'module-audit'] },
);

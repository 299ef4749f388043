import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // A migrated embedded database, made once per run, that test apps start from.
    globalSetup: ['test/global-setup.ts'],
    environment: 'node',
    // Each file gets its own embedded database; two cores are enough for two files at a time.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

// Every table of the service, one file per domain. drizzle-kit reads this file to generate migrations.
export * from './users.js';
export * from './audit.js';

// Every table of the service, one file per domain. drizzle-kit reads this file to generate migrations.
export * from './users.js';
export * from './audit.js';
export * from './vault.js';
export * from './notifications.js';
export * from './llm.js';
export * from './chat.js';
export * from './tools.js';
export * from './approvals.js';
export * from './instances.js';
export * from './documents.js';
export * from './mcp.js';
export * from './api-keys.js';

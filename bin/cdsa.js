#!/usr/bin/env node
// The compiled CLI; `npm ci` builds it (prepare script). A checkout whose sources changed since the build is refused.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProblem } from './build-check.js';

const problem = buildProblem(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
if (problem) {
  console.error(`cdsa: ${problem}`);
  process.exit(1);
}
await import('../dist/cli/index.js');

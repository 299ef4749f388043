#!/usr/bin/env node
// `npm start`: runs the built server. It never builds (`npm ci` and `npm run build` do), and refuses a build that is
// missing or older than the TypeScript sources of this checkout rather than serving stale code.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProblem } from './build-check.js';

const problem = buildProblem(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
if (problem) {
  console.error(`cdsa: ${problem}`);
  process.exit(1);
}
await import('../dist/server.js');

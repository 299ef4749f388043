import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// src/version.ts and dist/version.js are both one level below the package root.
const packageJson = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json');

export const VERSION: string = (JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { version: string }).version;

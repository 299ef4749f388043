// Whether the compiled server in dist/ matches the TypeScript sources beside it. Plain JavaScript: it must run before
// (and without) the build.
import fs from 'node:fs';
import path from 'node:path';

function newestSource(dir) {
  let newest;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const found = newestSource(full);
      if (found && (!newest || found.mtimeMs > newest.mtimeMs)) newest = found;
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      const { mtimeMs } = fs.statSync(full);
      if (!newest || mtimeMs > newest.mtimeMs) newest = { file: full, mtimeMs };
    }
  }
  return newest;
}

/**
 * Undefined when `root/dist` can run; otherwise what is wrong and what to do. Outside a checkout (the image ships
 * dist/ without the TypeScript project) only the presence of the build is checked.
 */
export function buildProblem(root) {
  const entry = path.join(root, 'dist', 'server.js');
  const built = fs.statSync(entry, { throwIfNoEntry: false });
  if (!built) return `the server is not built (${path.relative(root, entry)} is missing): run \`npm run build\` (\`npm ci\` builds it too)`;
  const sources = path.join(root, 'src');
  // A checkout has its tsconfig.json beside src/; the image ships neither (only src/db and src/data, read at run time).
  if (!fs.existsSync(path.join(root, 'tsconfig.json')) || !fs.existsSync(sources)) return undefined;
  const newest = newestSource(sources);
  if (newest && newest.mtimeMs > built.mtimeMs) {
    return `the build in dist/ is older than ${path.relative(root, newest.file)}: run \`npm run build\` first (npm start runs what is built and does not build)`;
  }
  return undefined;
}

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript in bin/ (it runs before any build), without type declarations
import { buildProblem } from '../../bin/build-check.js';
import { ROOT } from '../helpers/process.js';

const check = buildProblem as (root: string) => string | undefined;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-build-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function touch(file: string, secondsAgo: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!fs.existsSync(file)) fs.writeFileSync(file, '');
  const at = new Date(Date.now() - secondsAgo * 1000);
  fs.utimesSync(file, at, at);
}

describe('npm start', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

  it('does not rebuild on every start: no prestart build; npm ci still builds (prepare)', () => {
    expect(manifest.scripts.prestart).toBeUndefined();
    expect(manifest.scripts.start).toMatch(/^node .*bin\/start\.js$/);
    expect(manifest.scripts.prepare).toBe('npm run build');
  });

  it('refuses a missing build and a build older than the sources, with what to run; accepts a current one', () => {
    const checkout = path.join(root, 'checkout');
    touch(path.join(checkout, 'tsconfig.json'), 60);
    touch(path.join(checkout, 'src', 'server.ts'), 60);
    expect(check(checkout)).toMatch(/not built .*npm run build/);
    touch(path.join(checkout, 'dist', 'server.js'), 30);
    expect(check(checkout)).toBeUndefined();
    // A changed test does not need a build; a changed module does.
    touch(path.join(checkout, 'src', 'lib', 'x.test.ts'), 0);
    expect(check(checkout)).toBeUndefined();
    touch(path.join(checkout, 'src', 'lib', 'x.ts'), 0);
    expect(check(checkout)).toMatch(/older than src\/lib\/x\.ts: run `npm run build`/);
    // The image: dist/ without TypeScript sources.
    const image = path.join(root, 'image');
    touch(path.join(image, 'dist', 'server.js'), 30);
    touch(path.join(image, 'src', 'data', 'common-passwords.build.ts'), 0);
    expect(check(image)).toBeUndefined();
  });

  it('bin/start.js exits 1 with the reason instead of starting stale code', () => {
    const checkout = path.join(root, 'stale');
    fs.mkdirSync(path.join(checkout, 'bin'), { recursive: true });
    for (const file of ['start.js', 'build-check.js']) fs.copyFileSync(path.join(ROOT, 'bin', file), path.join(checkout, 'bin', file));
    touch(path.join(checkout, 'dist', 'server.js'), 30);
    touch(path.join(checkout, 'tsconfig.json'), 60);
    touch(path.join(checkout, 'src', 'app.ts'), 0);
    const run = spawnSync(process.execPath, [path.join(checkout, 'bin', 'start.js')], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^cdsa: the build in dist\/ is older than src\/app\.ts/);
  });
});

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { productionServerArgs, ROOT } from '../helpers/process.js';

/** The node flags before the entry point: what `npm start` and the image must agree on. */
function flagsBefore(args: string[], entry: string): string[] {
  const at = args.indexOf(entry);
  expect(at, `${entry} in ${args.join(' ')}`).toBeGreaterThan(-1);
  return args.slice(0, at);
}

describe('runtime flags of the production server', () => {
  const startFlags = flagsBefore(productionServerArgs(), 'bin/start.js');

  it('npm start turns off the memory reducer, whose full collections pause open streams', () => {
    expect(startFlags).toContain('--no-memory-reducer');
  });

  it('the image starts node with the same flags as npm start', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
    expect(entrypoint).not.toBeNull();
    const [command, ...args] = JSON.parse(entrypoint![1]!) as string[];
    expect(command).toBe('node');
    expect(flagsBefore(args, 'bin/cdsa.js')).toEqual(startFlags);
  });

  it('this node accepts them (an unknown flag would stop the server from starting)', () => {
    const run = spawnSync(process.execPath, [...startFlags, '-e', '0'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const unknown = spawnSync(process.execPath, ['--no-such-runtime-flag', '-e', '0'], { encoding: 'utf8' });
    expect(unknown.status).not.toBe(0);
  });
});

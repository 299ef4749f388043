import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDocumentsImport } from '../../src/cli/commands/documents.js';
import { queryRows } from '../../src/db/client.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';

function recorder() {
  const lines: string[] = [];
  const errors: string[] = [];
  return { out: { log: (line: string) => lines.push(line), error: (line: string) => errors.push(line) }, lines, errors };
}

describe('cdsa documents import', () => {
  let t: TestApp;
  let owner: TestUser;
  let folder: string;

  beforeAll(async () => {
    t = await buildTestApp({ processJobs: false });
    owner = await createUser(t);
    folder = await mkdtemp(path.join(tmpdir(), 'cdsa-import-'));
    await mkdir(path.join(folder, 'nested'));
    await writeFile(path.join(folder, 'a.md'), '# Alpha\n\nFirst document.');
    await writeFile(path.join(folder, 'nested', 'b.txt'), 'Second document.');
    await writeFile(path.join(folder, 'nested', 'c.csv'), 'k,v\none,1\n');
    await writeFile(path.join(folder, 'image.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
    await writeFile(path.join(folder, '.hidden.txt'), 'skipped');
  });
  afterAll(async () => {
    await t.close();
    await rm(folder, { recursive: true, force: true });
  });

  it('imports a folder recursively through the upload checks and the pipeline, with progress, for the owner', async () => {
    const { out, lines, errors } = recorder();
    expect(await runDocumentsImport(t.app, [folder], { owner: owner.user.username, tags: ['import'], label: 'CONFIDENTIAL' }, out)).toBe(0);
    expect(errors).toEqual([]);
    expect(lines.filter((line) => /^\[#+\.*\] \d\/3 /.test(line))).toHaveLength(3);
    expect(lines.at(-1)).toMatch(/^imported 3 of 3 files, 3 chunks in .* documents\/s\)$/);
    const rows = await queryRows<{ filename: string; status: string; label: string; tags: string[] }>(
      t.app.infra.database.db,
      sql`select filename, status, label, tags from documents where owner_id = ${owner.user.id} order by filename`,
    );
    expect(rows).toEqual([
      { filename: 'a.md', status: 'indexed', label: 'CONFIDENTIAL', tags: ['import'] },
      { filename: 'b.txt', status: 'indexed', label: 'CONFIDENTIAL', tags: ['import'] },
      { filename: 'c.csv', status: 'indexed', label: 'CONFIDENTIAL', tags: ['import'] },
    ]);
    const [uploaded] = await queryRows<{ n: number }>(t.app.infra.database.db, sql`select count(*)::int as n from audit_events where event_type = 'DOCUMENT_UPLOADED' and user_id = ${owner.user.id}`);
    expect(uploaded!.n).toBe(3);

    // Importing again finds the same bytes: nothing is duplicated.
    const again = recorder();
    expect(await runDocumentsImport(t.app, [folder], { owner: owner.user.username }, again.out)).toBe(0);
    expect(again.lines.filter((line) => line.includes('already imported'))).toHaveLength(3);
  });

  it('reports a refused file with exit code 1, and an unknown owner with 2', async () => {
    const refused = recorder();
    expect(await runDocumentsImport(t.app, [path.join(folder, 'image.png')], { owner: owner.user.username }, refused.out)).toBe(1);
    expect(refused.errors.join('\n')).toMatch(/refused: .*not supported/);
    const unknown = recorder();
    expect(await runDocumentsImport(t.app, [folder], { owner: 'nobody-here' }, unknown.out)).toBe(2);
  });
});

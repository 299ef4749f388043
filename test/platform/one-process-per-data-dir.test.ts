import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, usingPostgres, type TestApp } from '../helpers/app.js';
import { freePort, ROOT, startProcess, waitForHttp, type RunningServer } from '../helpers/process.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `cdsa <args>` as an operator types it (TypeScript through tsx), with standard output and error kept apart. */
function cdsa(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', OLLAMA_BASE_URL: 'http://127.0.0.1:9', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function login(url: string, username: string, password: string): Promise<number> {
  const response = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return response.status;
}

const generatedPassword = (stdout: string) => /^password: (\S+)$/m.exec(stdout)![1]!;

// One server on the embedded database holds DATA_DIR; everything else must go through it or stay away.
describe.skipIf(usingPostgres)('one process per DATA_DIR (embedded database)', { timeout: 180_000 }, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-datadir-'));
  const env = { DATA_DIR: dataDir };
  let server: RunningServer;
  beforeAll(async () => {
    server = startProcess(['src/server.ts'], { ...env, PORT: String(await freePort()), OLLAMA_BASE_URL: 'http://127.0.0.1:9' });
    await waitForHttp(`${server.url}/health/ready`, 120_000);
  }, 150_000);
  afterAll(() => {
    server?.child.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses a second server on the same DATA_DIR before it opens the database, so the audit chain cannot fork', async () => {
    const second = startProcess(['src/server.ts'], { ...env, PORT: String(await freePort()) });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(new RegExp(`DATA_DIR ${dataDir} is in use by a running CDSA server \\(pid \\d+\\)`));
    // Refused before the app (and its logger) started: no log line at all.
    expect(second.output()).not.toContain('"level"');
    expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
  });

  it('prints a one-time setup token at first start, for the first ADMIN', () => {
    expect(server.output()).toContain('no administrator exists yet');
    expect(server.output()).toMatch(/"token":"[A-Za-z0-9_-]{32}"/);
  });

  it('runs users create inside the running server: the user can log in at once and its audit row is in the chain', async () => {
    const token = /"token":"([A-Za-z0-9_-]{32})"/.exec(server.output())![1];
    const created = await cdsa(['users', 'create', '--username', 'first-admin', '--email', 'first-admin@example.com', '--role', 'ADMIN'], env);
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toMatch(/^created ADMIN first-admin <first-admin@example.com>/);
    expect(await login(server.url, 'first-admin', generatedPassword(created.stdout))).toBe(200);
    const again = await cdsa(['users', 'create', '--username', 'first-admin', '--email', 'other@example.com', '--role', 'ADMIN'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    // An administrator exists now: the printed setup token is refused.
    const setup = await fetch(`${server.url}/api/v1/auth/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, username: 'late-admin', email: 'late@example.com', password: 'a sturdy passphrase 42' }),
    });
    expect(setup.status).toBe(409);
  });

  it('documents import runs inside the running server: the files are documents of the owner, served at once', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-import-src-'));
    try {
      fs.writeFileSync(path.join(folder, 'memo.md'), '# Memo\n\nImported while the server runs.');
      fs.writeFileSync(path.join(folder, 'notes.txt'), 'Second file.');
      const created = await cdsa(['users', 'create', '--username', 'importer', '--email', 'importer@example.com', '--role', 'ANALYST'], env);
      expect(created.code).toBe(0);
      const imported = await cdsa(['documents', 'import', folder, '--owner', 'importer', '--tags', 'bulk'], env);
      expect(imported.stderr).not.toMatch(/refused|failed/);
      expect(imported.code).toBe(0);
      expect(imported.stdout).toMatch(/^imported 2 of 2 files/m);
      expect(imported.stdout.split('\n').filter((line) => /^\[#+\.*\] \d\/2 /.test(line))).toHaveLength(2);

      const session = await fetch(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'importer', password: generatedPassword(created.stdout) }),
      });
      const { access_token: token } = (await session.json()) as { access_token: string };
      const listed = await fetch(`${server.url}/api/v1/documents?owner=me`, { headers: { authorization: `Bearer ${token}` } });
      const items = ((await listed.json()) as { items: { filename: string; status: string; tags: string[] }[] }).items;
      expect(items.map((item) => [item.filename, item.status, item.tags]).sort()).toEqual([
        ['memo.md', 'indexed', ['bulk']],
        ['notes.txt', 'indexed', ['bulk']],
      ]);

      const missing = await cdsa(['documents', 'import', path.join(folder, 'absent.md'), '--owner', 'importer'], env);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('cannot read');
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('audit verify prints only its JSON report on stdout; export > file then verify --file works', async () => {
    const verified = await cdsa(['audit', 'verify'], env);
    expect(verified.code).toBe(0);
    const report = JSON.parse(verified.stdout) as { valid: boolean; checked: number };
    expect(report.valid).toBe(true);
    expect(report.checked).toBeGreaterThan(0);

    const exported = await cdsa(['audit', 'export'], env);
    expect(exported.code).toBe(0);
    const lines = exported.stdout.trimEnd().split('\n');
    expect(lines.map((line) => (JSON.parse(line) as { event_type: string }).event_type)).toContain('USER_CREATED');
    const file = path.join(dataDir, 'export.jsonl');
    fs.writeFileSync(file, exported.stdout);
    const offline = await cdsa(['audit', 'verify', '--file', file], env);
    expect(offline.code).toBe(0);
    expect(JSON.parse(offline.stdout)).toMatchObject({ valid: true, checked: lines.length, last_seq: report.checked });
  });

  it('migrate and vault rotate run inside the running server too', async () => {
    const migrated = await cdsa(['migrate'], env);
    expect(migrated).toMatchObject({ code: 0, stdout: 'migrations applied (embedded); vector search available\n' });
    const rotated = await cdsa(['vault', 'rotate'], env);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/rotated \d+ value\(s\) to key/);
  });
});

// No server: the command holds DATA_DIR itself; its development warnings go to stderr, never into its output.
describe.skipIf(usingPostgres)('CLI commands without a server', { timeout: 120_000 }, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-cli-alone-'));
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('audit verify | jq .valid sees one JSON document; the generated-secrets warning is on stderr', async () => {
    const verified = await cdsa(['audit', 'verify'], { DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true });
    expect(verified.stderr).toContain('using development secrets generated into DATA_DIR');
    // It let go of DATA_DIR when it finished.
    expect(fs.existsSync(path.join(dataDir, 'run', 'admin.sock'))).toBe(false);
  });
});

// With DATABASE_URL there is no lock to take: the command connects itself, beside the running instance.
describe.skipIf(!usingPostgres)('CLI commands with DATABASE_URL', { timeout: 120_000 }, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('creates a user the running instance can log in, and verifies the same chain', async () => {
    // The command shares the instance's keys, as an operator's would: the chain's MACs and the field cipher use them.
    const env = {
      DATABASE_URL: t.databaseUrl!,
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-pgcli-')),
      AUDIT_HMAC_KEYS: t.secrets.auditHmacKeys,
      ENCRYPTION_KEYS: t.secrets.encryptionKeys,
    };
    const created = await cdsa(['users', 'create', '--username', 'pg-admin', '--email', 'pg-admin@example.com', '--role', 'ADMIN'], env);
    expect(created.code).toBe(0);
    const response = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { username: 'pg-admin', password: generatedPassword(created.stdout) },
    });
    expect(response.statusCode).toBe(200);
    const verified = await cdsa(['audit', 'verify'], env);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true });
  });
});

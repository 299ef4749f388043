import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { unreadableKeyMessage } from '../../src/lib/secrets.js';
import { startWorkerHeartbeat, WORKER_HEARTBEAT_FILE } from '../../src/runtime.js';
import { buildTestApp } from '../helpers/app.js';
import { ROOT } from '../helpers/process.js';

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  pull_policy?: string;
  ports?: string[];
  healthcheck?: { test: string[] };
  environment?: Record<string, string>;
  volumes?: string[];
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
const dockerfile = read('Dockerfile');

/**
 * The Dockerfile checks hadolint would make (Debian has no hadolint package), kept to the rules that matter here:
 * pinned base images on the current LTS line, no ADD, no root at run time, a health check, exec-form entry point.
 */
describe('Dockerfile (static checks)', () => {
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));

  it('builds from a tagged node image of the current LTS line (24), never :latest', () => {
    const bases = instructions.filter((line) => line.startsWith('FROM ')).map((line) => line.split(/\s+/)[1]!);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) expect(base).toMatch(/^node:24(\.\d+)*-[a-z]+-slim$/);
  });

  it('copies instead of ADD, runs as a fixed non-root uid, has a health check and an exec-form entry point', () => {
    expect(instructions.some((line) => line.startsWith('ADD '))).toBe(false);
    const user = instructions.filter((line) => line.startsWith('USER ')).at(-1);
    expect(user).toBe('USER 10001:10001');
    expect(dockerfile).toMatch(/useradd --system --uid 10001/);
    expect(instructions.some((line) => line.startsWith('HEALTHCHECK '))).toBe(true);
    expect(instructions.find((line) => line.startsWith('ENTRYPOINT '))).toMatch(/^ENTRYPOINT \[/);
    for (const line of instructions.filter((candidate) => candidate.startsWith('RUN ') && candidate.includes('apt-get install'))) {
      expect(line).toContain('--no-install-recommends');
    }
  });

  it('has a .dockerignore that keeps dependencies, local data, secrets and .env out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    for (const entry of ['node_modules', 'data', 'secrets', '.env', 'dist', '.git']) expect(ignored).toContain(entry);
  });
});

describe('docker-compose.yml', () => {
  it('publishes one port, the reverse proxy’s; the api replicas have none, so --scale api=2 works', () => {
    const published = Object.entries(compose.services).filter(([, service]) => (service.ports ?? []).length > 0);
    expect(published.map(([name]) => name)).toEqual(['proxy']);
    expect(compose.services.proxy!.volumes).toContain('./Caddyfile:/etc/caddy/Caddyfile:ro');
    expect(compose.services.api!.environment!.TRUST_PROXY).toBe('${TRUST_PROXY:-true}');
  });

  it('proxies streams unbuffered with long read timeouts to every api replica', () => {
    const caddyfile = read('Caddyfile');
    expect(caddyfile).toMatch(/flush_interval -1/);
    expect(caddyfile).toMatch(/dynamic a \{\s*name api\s*port 8000/);
    expect(caddyfile).toMatch(/read_timeout 10m/);
    expect(caddyfile).not.toMatch(/^\s*write\s/m);
  });

  it('builds the cdsa image instead of pulling it, for the api and the worker', () => {
    for (const name of ['api', 'worker']) {
      const service = compose.services[name]!;
      expect(service.image).toBe('cdsa:latest');
      expect(service.build).toBeDefined();
      expect(service.pull_policy).toBe('build');
    }
  });

  it('gives the worker (which listens on no port) a health check of its own: a heartbeat file', () => {
    const test = compose.services.worker!.healthcheck!.test;
    expect(test.join(' ')).toContain(WORKER_HEARTBEAT_FILE);
    expect(test.join(' ')).not.toContain('http');
  });
});

describe('.env.example', () => {
  const example = new Map(
    read('.env.example')
      .split('\n')
      .filter((line) => /^[A-Z0-9_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
  );
  const composeText = read('docker-compose.yml');

  it('does not silently override compose defaults when copied to .env', () => {
    for (const match of composeText.matchAll(/\$\{([A-Z0-9_]+):-([^}]*)\}/g)) {
      const [, name, fallback] = match;
      if (!example.has(name!)) continue;
      expect(`${name}=${example.get(name!)}`).toBe(`${name}=${example.get(name!) === '' ? '' : fallback}`);
    }
    expect(example.has('OLLAMA_BASE_URL')).toBe(false);
    expect(example.has('REGISTRATION_MODE')).toBe(false);
  });

  it('lists every variable compose requires, POSTGRES_PASSWORD included', () => {
    for (const match of composeText.matchAll(/\$\{([A-Z0-9_]+):\?/g)) expect(example.has(match[1]!), match[1]).toBe(true);
    expect(example.has('POSTGRES_PASSWORD')).toBe(true);
  });
});

describe('the container user and its files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-deploy-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('says why the audit signing key cannot be read and how to fix its mode and owner', () => {
    const key = path.join(dir, 'audit-signing-key.pem');
    fs.writeFileSync(key, 'x', { mode: 0o600 });
    const denied = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    const message = unreadableKeyMessage(key, denied);
    expect(message).toContain(`permission denied for uid ${process.getuid!()}`);
    expect(message).toContain('mode 0600');
    expect(message).toMatch(/chown \d+ <key file> && chmod 0400 <key file>/);
    expect(message).toContain('uid 10001');
    expect(unreadableKeyMessage(path.join(dir, 'missing.pem'), Object.assign(new Error('ENOENT'), { code: 'ENOENT' }))).toMatch(/no such file/);
  });

  it('the worker touches its heartbeat file, and the compose health check passes on it and fails without it', async () => {
    const dataDir = path.join(dir, 'worker');
    const t = await buildTestApp({ env: { DATA_DIR: dataDir }, processJobs: false });
    const probe = () => {
      const [, ...args] = compose.services.worker!.healthcheck!.test;
      return spawnSync(args[0]!, args.slice(1), { env: { ...process.env, DATA_DIR: dataDir } }).status;
    };
    let stop = () => {};
    try {
      expect(probe()).toBe(1);
      stop = startWorkerHeartbeat(t.app, 60_000);
      for (let attempt = 0; attempt < 100 && !fs.existsSync(path.join(dataDir, WORKER_HEARTBEAT_FILE)); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(probe()).toBe(0);
      const stale = new Date(Date.now() - 120_000);
      fs.utimesSync(path.join(dataDir, WORKER_HEARTBEAT_FILE), stale, stale);
      expect(probe()).toBe(1);
    } finally {
      stop();
      await t.close();
    }
  });
});

/**
 * Platform benchmark: /health through the full plugin stack vs a bare Fastify hello-world (target ≥ 0.8×), and cold
 * start to ready on the embedded database after first init (target < 3 s). Run: npm run build && npx tsx bench/platform.bench.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatLoad, runLoad } from './lib/http-load.js';
import { freePort, productionServerArgs, ROOT, waitForHttp } from '../test/helpers/process.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdsa-bench-'));

function start(args: string[], port: number): ChildProcess {
  return spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', RATE_LIMIT_REQUESTS: '10000000', DATABASE_URL: '', REDIS_URL: '' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function coldStart(): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = start(productionServerArgs(), port);
  await waitForHttp(`http://127.0.0.1:${port}/health/ready`);
  const elapsed = performance.now() - started;
  await stop(child);
  return elapsed;
}

if (!fs.existsSync(path.join(ROOT, 'dist', 'server.js'))) {
  console.error('dist/server.js is missing: run `npm run build` first');
  process.exit(1);
}

// First init creates the embedded database; it is not what the target is about.
const firstInit = await coldStart();
const coldRuns = [await coldStart(), await coldStart(), await coldStart()].sort((a, b) => a - b);

const barePort = await freePort();
const bare = start(['--import', 'tsx', 'bench/fixtures/bare-fastify.ts'], barePort);
await waitForHttp(`http://127.0.0.1:${barePort}/health`);
await runLoad({ url: `http://127.0.0.1:${barePort}/health`, connections, seconds: 1 });
const bareResult = await runLoad({ url: `http://127.0.0.1:${barePort}/health`, connections, seconds });
await stop(bare);

const cdsaPort = await freePort();
const cdsa = start(productionServerArgs(), cdsaPort);
await waitForHttp(`http://127.0.0.1:${cdsaPort}/health/ready`);
await runLoad({ url: `http://127.0.0.1:${cdsaPort}/health`, connections, seconds: 1 });
const cdsaResult = await runLoad({ url: `http://127.0.0.1:${cdsaPort}/health`, connections, seconds });
await stop(cdsa);
fs.rmSync(dataDir, { recursive: true, force: true });

console.log(formatLoad('bare Fastify /health', bareResult));
console.log(formatLoad('CDSA /health (full stack)', cdsaResult));
const ratio = cdsaResult.rps / bareResult.rps;
console.log(`throughput ratio CDSA/bare: ${ratio.toFixed(2)}x (target >= 0.80x) ${ratio >= 0.8 ? 'PASS' : 'MISS'}`);
console.log(`cold start to ready, embedded DB: first init ${(firstInit / 1000).toFixed(2)} s; after init median ${(coldRuns[1]! / 1000).toFixed(2)} s (runs ${coldRuns.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s; target < 3 s) ${coldRuns[1]! < 3000 ? 'PASS' : 'MISS'}`);

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PiiEntity } from './detectors.js';
import { detectionBudgetMs, isDetectionKnown, primeDetection } from './redactor.js';

export interface DetectionRequest {
  id: number;
  text: string;
  budgetMs: number;
}

export type DetectionResponse = { id: number; ok: true; entities: PiiEntity[] } | { id: number; ok: false; reason: 'timeout' | 'error' };

export interface DetectionOffload {
  /**
   * Detects PII in the long strings of `value` (every string at any depth, at least `minChars` long) on worker threads
   * and primes the redactor with the results, so the synchronous redaction that follows finds them ready instead of
   * running them on the event loop. Never weakens redaction: whatever is not primed (a worker failed, timed out or is
   * gone) is detected in place as before, and fails closed there.
   */
  prefetch(value: unknown, budgetPer32k: number): Promise<void>;
  /** Starts the workers and resolves once they have loaded the word lists (a serving instance does it at start). */
  warm(): Promise<void>;
  close(): Promise<void>;
}

/** The worker script beside this file: compiled JavaScript in a build, TypeScript through tsx in development and tests. */
function workerScript(): { source: URL | string; eval: boolean } {
  const compiled = new URL('./detection.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return { source: compiled, eval: false };
  const source = new URL('./detection.worker.ts', import.meta.url).href;
  return { source: `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`, eval: true };
}

/** Strings of a JSON-like value (object keys too), at least `minChars` long, without duplicates. */
export function longStrings(value: unknown, minChars: number, out: Set<string> = new Set(), depth = 0): Set<string> {
  if (typeof value === 'string') {
    if (value.length >= minChars) out.add(value);
  } else if (depth < 64 && Array.isArray(value)) {
    for (const item of value) longStrings(item, minChars, out, depth + 1);
  } else if (depth < 64 && typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      if (key.length >= minChars) out.add(key);
      longStrings(inner, minChars, out, depth + 1);
    }
  }
  return out;
}

interface Pending {
  resolve(): void;
  timer: NodeJS.Timeout;
}

/**
 * A small pool of detection workers. `workers: 0` turns the offload off (everything is detected in place). A worker
 * that dies is replaced on the next request; its pending texts are simply not primed.
 */
export function createDetectionOffload(options: { workers: number; minChars: number; logger?: { warn(obj: object, msg: string): void } }): DetectionOffload {
  const pool: Worker[] = [];
  const ready = new Set<Worker>();
  const readyWaiters: (() => void)[] = [];
  const pending = new Map<number, Pending & { worker: Worker }>();
  let nextId = 0;
  let turn = 0;
  let closed = false;

  function settle(id: number): void {
    const task = pending.get(id);
    if (!task) return;
    pending.delete(id);
    clearTimeout(task.timer);
    task.resolve();
  }

  function spawn(): Worker {
    const script = workerScript();
    const worker = new Worker(script.source, { eval: script.eval });
    worker.unref();
    worker.on('message', (response: DetectionResponse | { ready: true }) => {
      if ('ready' in response) {
        ready.add(worker);
        if (ready.size >= options.workers) for (const wake of readyWaiters.splice(0)) wake();
        return;
      }
      if (!pending.has(response.id)) return;
      const text = requests.get(response.id);
      requests.delete(response.id);
      // A worker that overran (it may just have been starved of CPU) primes nothing: the text is detected in place,
      // under the same budget, and refused there if it overruns again.
      if (text !== undefined && response.ok) primeDetection(text, response.entities);
      settle(response.id);
    });
    const gone = (error?: Error) => {
      const index = pool.indexOf(worker);
      if (index >= 0) pool.splice(index, 1);
      ready.delete(worker);
      for (const [id, task] of pending) {
        if (task.worker !== worker) continue;
        requests.delete(id);
        settle(id);
      }
      if (error && !closed) options.logger?.warn({ err: error.message }, 'a redaction detection worker stopped; it is replaced on the next request');
    };
    worker.on('error', gone);
    worker.on('exit', () => gone());
    pool.push(worker);
    return worker;
  }

  const requests = new Map<number, string>();

  /** A worker that has loaded its word lists; none yet (still starting): undefined, and the text is detected in place. */
  function worker(): Worker | undefined {
    while (pool.length < options.workers) spawn();
    const available = pool.filter((candidate) => ready.has(candidate));
    if (available.length === 0) return undefined;
    turn = (turn + 1) % available.length;
    return available[turn];
  }

  return {
    async prefetch(value, budgetPer32k) {
      if (closed || options.workers <= 0) return;
      const texts = [...longStrings(value, options.minChars)].filter((text) => !isDetectionKnown(text));
      if (texts.length === 0) return;
      await Promise.all(
        texts.map(
          (text) =>
            new Promise<void>((resolve) => {
              const target = worker();
              if (!target) {
                resolve();
                return;
              }
              const id = (nextId += 1);
              const budgetMs = detectionBudgetMs(text, budgetPer32k);
              // Waiting longer than the budget (plus the hop) is pointless: the text is then detected in place.
              const timer = setTimeout(() => {
                requests.delete(id);
                settle(id);
              }, budgetMs + 1_000);
              pending.set(id, { resolve, timer, worker: target });
              requests.set(id, text);
              target.postMessage({ id, text, budgetMs } satisfies DetectionRequest);
            }),
        ),
      );
    },
    async warm() {
      if (closed || options.workers <= 0) return;
      while (pool.length < options.workers) spawn();
      if (ready.size >= options.workers) return;
      await new Promise<void>((resolve) => readyWaiters.push(resolve));
    },
    async close() {
      for (const wake of readyWaiters.splice(0)) wake();
      closed = true;
      for (const id of [...pending.keys()]) settle(id);
      await Promise.all(pool.splice(0).map((w) => w.terminate()));
    },
  };
}

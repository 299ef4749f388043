import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DocumentChunk } from './documents.chunking.js';
import type { Classification } from './documents.classify.js';
import type { DocumentMediaType } from './documents.formats.js';
import type { ZipLimits } from './documents.office.js';

export interface ParseRequest {
  id: number;
  mediaType: DocumentMediaType;
  bytes: Uint8Array;
  chunkTokens: number;
  overlapTokens: number;
  zipLimits: ZipLimits;
}

export type ParseResponse =
  | { id: number; ok: true; text: string; pageCount: number | null; chunks: DocumentChunk[]; classification: Classification }
  | { id: number; ok: false; status: 415 | 422; message: string; internal?: string };

export type ParseResult = Omit<Extract<ParseResponse, { ok: true }>, 'id' | 'ok'>;

export class ParseFailedError extends Error {
  constructor(
    readonly status: 415 | 422,
    message: string,
  ) {
    super(message);
    this.name = 'ParseFailedError';
  }
}

interface Waiting {
  resolve(result: ParseResult): void;
  reject(error: Error): void;
}

/** The worker script beside this file: compiled JavaScript in a build, TypeScript through tsx in development and tests. */
function workerScript(): { source: URL | string; eval: boolean } {
  const compiled = new URL('./documents.worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return { source: compiled, eval: false };
  const source = new URL('./documents.worker.ts', import.meta.url).href;
  return { source: `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`, eval: true };
}

/**
 * A small pool of worker threads that extract and chunk documents. A worker that dies (a parser crash, a memory
 * cap hit by a hostile file) fails only its own task and is replaced. Each task has a deadline.
 */
export function createParserPool(options: { size: number; timeoutMs: number; maxMemoryMb: number }) {
  const script = workerScript();
  const idle: Worker[] = [];
  const busy = new Map<Worker, { id: number; waiting: Waiting; timer: NodeJS.Timeout }>();
  const queue: { request: Omit<ParseRequest, 'id'>; waiting: Waiting }[] = [];
  let created = 0;
  let nextId = 0;
  let closed = false;

  function spawn(): Worker {
    const worker = new Worker(script.source, { eval: script.eval, resourceLimits: { maxOldGenerationSizeMb: options.maxMemoryMb } });
    created += 1;
    worker.unref();
    worker.on('message', (response: ParseResponse) => {
      const task = busy.get(worker);
      if (!task || task.id !== response.id) return;
      clearTimeout(task.timer);
      busy.delete(worker);
      if (response.ok) task.waiting.resolve({ text: response.text, pageCount: response.pageCount, chunks: response.chunks, classification: response.classification });
      else task.waiting.reject(new ParseFailedError(response.status, response.message));
      idle.push(worker);
      pump();
    });
    const fail = (error: Error) => {
      const task = busy.get(worker);
      busy.delete(worker);
      const index = idle.indexOf(worker);
      if (index >= 0) idle.splice(index, 1);
      created -= 1;
      if (task) {
        clearTimeout(task.timer);
        task.waiting.reject(error);
      }
      pump();
    };
    worker.on('error', (error) => fail(new ParseFailedError(422, `the file could not be read (${error.message.slice(0, 120)})`)));
    worker.on('exit', (code) => {
      if (busy.has(worker) || idle.includes(worker)) fail(new ParseFailedError(422, `the file could not be read (the parser stopped with code ${code})`));
    });
    return worker;
  }

  function pump(): void {
    while (!closed && queue.length > 0) {
      let worker = idle.pop();
      if (!worker) {
        if (created >= options.size) return;
        worker = spawn();
      }
      const { request, waiting } = queue.shift()!;
      const id = ++nextId;
      const target = worker;
      const timer = setTimeout(() => {
        busy.delete(target);
        created -= 1;
        void target.terminate();
        waiting.reject(new ParseFailedError(422, `the file took longer than ${Math.round(options.timeoutMs / 1000)} s to read`));
        pump();
      }, options.timeoutMs);
      busy.set(worker, { id, waiting, timer });
      worker.ref();
      worker.postMessage({ ...request, id } satisfies ParseRequest);
    }
    for (const worker of idle) worker.unref();
  }

  return {
    parse(request: Omit<ParseRequest, 'id'>): Promise<ParseResult> {
      if (closed) return Promise.reject(new Error('the parser pool is closed'));
      return new Promise<ParseResult>((resolve, reject) => {
        queue.push({ request, waiting: { resolve, reject } });
        pump();
      });
    },
    async close(): Promise<void> {
      closed = true;
      for (const { waiting } of queue.splice(0)) waiting.reject(new Error('the parser pool is closed'));
      const workers = [...idle, ...busy.keys()];
      for (const task of busy.values()) {
        clearTimeout(task.timer);
        task.waiting.reject(new Error('the parser pool is closed'));
      }
      busy.clear();
      idle.length = 0;
      await Promise.all(workers.map((worker) => worker.terminate()));
    },
  };
}

export type ParserPool = ReturnType<typeof createParserPool>;

/**
 * Where a CLI command writes. `out` is the command's output (standard output: what a pipe or a redirect receives),
 * `err` is for people (standard error), `result` is a value the caller on the command line may want besides the
 * output (e.g. an export's summary). The same command runs in this process or inside the server that holds DATA_DIR
 * (src/cli/admin-socket.ts): only the CommandIO differs.
 */
export interface CommandIO {
  out(text: string): Promise<void>;
  err(text: string): Promise<void>;
  result(value: unknown): Promise<void>;
}

function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** The process's own streams; `result` values are kept for the caller. */
export function processIO(): CommandIO & { results: unknown[] } {
  const results: unknown[] = [];
  return {
    results,
    out: (text) => write(process.stdout, text),
    err: (text) => write(process.stderr, text),
    async result(value) {
      results.push(value);
    },
  };
}

/** Collects everything (tests, and commands whose output the CLI post-processes). */
export function bufferIO(): CommandIO & { stdout: string[]; stderr: string[]; results: unknown[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const results: unknown[] = [];
  return {
    stdout,
    stderr,
    results,
    async out(text) {
      stdout.push(text);
    },
    async err(text) {
      stderr.push(text);
    },
    async result(value) {
      results.push(value);
    },
  };
}

/** console-like log/error lines onto a CommandIO; `flush` waits until every line was written. */
export function lineOutput(io: CommandIO): { log(message: string): void; error(message: string): void; flush(): Promise<void> } {
  const pending: Promise<void>[] = [];
  return {
    log: (message) => void pending.push(io.out(`${message}\n`)),
    error: (message) => void pending.push(io.err(`${message}\n`)),
    async flush() {
      await Promise.all(pending);
    },
  };
}

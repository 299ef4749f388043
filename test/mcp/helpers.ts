import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { freePort, ROOT } from '../helpers/process.js';

/** The npm package's own launcher (`mcp-server-everything [stdio|streamableHttp]`), as MCP_STDIO_COMMANDS lists it. */
export const EVERYTHING_BIN = path.join(ROOT, 'node_modules', '.bin', 'mcp-server-everything');

export interface EverythingServer {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `@modelcontextprotocol/server-everything` over Streamable HTTP on a free port and waits until it answers. */
export async function startEverythingHttp(): Promise<EverythingServer> {
  const port = await freePort();
  const child = spawn(EVERYTHING_BIN, ['streamableHttp'], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/mcp`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (/listening on port/i.test(stderr)) break;
    if (child.exitCode !== null) throw new Error(`server-everything exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`server-everything did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface CountingProxy {
  /** `http://127.0.0.1:<port>/mcp` */
  readonly url: string;
  readonly hostPort: string;
  /** `tools/call` requests that reached the server, by tool name. */
  calls(tool: string): number;
  /** Rewrites the server's `tools/list` answers (a server upgraded to a new schema). */
  rewriteToolList(rewrite: ((tools: Array<Record<string, unknown>>) => void) | null): void;
  /** Authorization headers the proxy saw. */
  readonly authorizations: string[];
  close(): Promise<void>;
}

/**
 * A transparent HTTP proxy in front of a real MCP server: it counts the `tools/call` requests that pass (the side
 * effects a test asserts happen exactly once) and can rewrite `tools/list` answers, as an upgraded server would list.
 */
export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream);
  const counts = new Map<string, number>();
  const authorizations: string[] = [];
  let rewrite: ((tools: Array<Record<string, unknown>>) => void) | null = null;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let method: string | undefined;
      try {
        const message = JSON.parse(body.toString('utf8')) as { method?: string; params?: { name?: string } };
        method = message.method;
        if (method === 'tools/call' && message.params?.name) counts.set(message.params.name, (counts.get(message.params.name) ?? 0) + 1);
      } catch {
        method = undefined;
      }
      if (typeof req.headers.authorization === 'string') authorizations.push(req.headers.authorization);
      const forward = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } },
        (upstreamResponse) => {
          if (method !== 'tools/list' || rewrite === null) {
            res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
            upstreamResponse.pipe(res);
            return;
          }
          const parts: Buffer[] = [];
          upstreamResponse.on('data', (chunk: Buffer) => parts.push(chunk));
          upstreamResponse.on('end', () => {
            const text = Buffer.concat(parts).toString('utf8');
            const rewritten = text.replace(/^data: (.+)$/gm, (line, json: string) => {
              if (!json.trim().startsWith('{')) return line;
              const message = JSON.parse(json) as { result?: { tools?: Array<Record<string, unknown>> } };
              if (message.result?.tools) rewrite?.(message.result.tools);
              return `data: ${JSON.stringify(message)}`;
            });
            const headers = { ...upstreamResponse.headers };
            delete headers['content-length'];
            res.writeHead(upstreamResponse.statusCode ?? 502, headers);
            res.end(rewritten);
          });
        },
      );
      forward.on('error', () => res.destroy());
      res.on('close', () => forward.destroy());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    hostPort: `127.0.0.1:${port}`,
    calls: (tool) => counts.get(tool) ?? 0,
    rewriteToolList(next) {
      rewrite = next;
    },
    authorizations,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

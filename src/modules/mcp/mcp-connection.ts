import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError, type CallToolResult, type JSONRPCMessage, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { McpTransport } from '../../db/schema/mcp.js';
import { ToolRunError } from '../tools/builtins/types.js';
import { checkEgressUrl, EgressError, type Allowlist } from '../tools/egress.js';

/** What a connection needs to know of a registered server. */
export interface McpEndpoint {
  name: string;
  transport: McpTransport;
  url: string | null;
  command: string | null;
  args: string[];
}

export interface ConnectOptions {
  allowlist: Allowlist;
  /** Commands a stdio server may be started with (MCP_STDIO_COMMANDS), checked again at connect time. */
  stdioCommands: readonly string[];
  /** The working directory and the only environment variables of a stdio server's process. */
  stdio: { cwd: string; env: Record<string, string> };
  /** The bearer token (a vault secret's value) for a Streamable HTTP server. */
  bearerToken?: string;
  signal: AbortSignal;
  timeoutMs: number;
}

export interface McpSession {
  client: Client;
  /** The protocol revision agreed in `initialize`. */
  protocolVersion: string | null;
  serverInfo: { name: string; version: string } | undefined;
}

const MAX_LISTED_TOOLS = 500;
const ERROR_DETAIL_MAX = 300;

/**
 * Delegates to the real transport and keeps the protocol revision the client and server agreed on (the SDK tells the
 * transport through `setProtocolVersion`, which only the HTTP transport implements).
 */
class RecordingTransport implements Transport {
  protocolVersion: string | null = null;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport['onmessage'];

  constructor(private readonly inner: Transport) {
    inner.onclose = () => this.onclose?.();
    inner.onerror = (error) => this.onerror?.(error);
    inner.onmessage = (message, extra) => this.onmessage?.(message, extra);
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  send(message: JSONRPCMessage, options?: Parameters<Transport['send']>[1]): Promise<void> {
    return this.inner.send(message, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
    this.inner.setProtocolVersion?.(version);
  }
}

function short(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > ERROR_DETAIL_MAX ? `${line.slice(0, ERROR_DETAIL_MAX)}…` : line;
}

/** An SDK or transport failure in words safe for the caller: which server, what went wrong, never a credential. */
export function describeMcpFailure(server: Pick<McpEndpoint, 'name'>, error: unknown, signal: AbortSignal, timeoutMs: number): ToolRunError {
  if (error instanceof ToolRunError) return error;
  if (signal.aborted || (error instanceof McpError && error.code === Number(ErrorCode.RequestTimeout))) {
    return new ToolRunError('timeout', `the MCP server "${server.name}" gave no answer within ${timeoutMs} ms`);
  }
  if (error instanceof McpError && error.code === Number(ErrorCode.ConnectionClosed)) {
    return new ToolRunError('mcp_unreachable', `the MCP server "${server.name}" closed the connection (it may have stopped)`);
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/ECONNREFUSED|fetch failed|ENOENT|EACCES|spawn/i.test(message)) {
    return new ToolRunError('mcp_unreachable', `the MCP server "${server.name}" is not reachable`);
  }
  return new ToolRunError('mcp_error', `the MCP server "${server.name}" failed: ${short(message)}`);
}

function httpTransport(server: McpEndpoint, options: ConnectOptions): Transport {
  if (!server.url) throw new ToolRunError('mcp_misconfigured', `the MCP server "${server.name}" has no URL`);
  try {
    checkEgressUrl(server.url, options.allowlist);
  } catch (error) {
    if (error instanceof EgressError) throw new ToolRunError(`egress_${error.code}`, error.message);
    throw error;
  }
  const allowlist = options.allowlist;
  const headers: Record<string, string> = {};
  if (options.bearerToken !== undefined) headers.authorization = `Bearer ${options.bearerToken}`;
  // Every request the transport makes (POST, the GET stream, DELETE) is checked against the allowlist again, and a
  // redirect is never followed: an allowed host cannot bounce the call (and its token) elsewhere.
  const guardedFetch: typeof fetch = (input, init) => {
    const target = input instanceof Request ? input.url : String(input);
    checkEgressUrl(target, allowlist);
    return fetch(input, { ...init, redirect: 'manual', signal: init?.signal ? AbortSignal.any([init.signal, options.signal]) : options.signal });
  };
  return new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers, redirect: 'manual' }, fetch: guardedFetch, reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 } });
}

function stdioTransport(server: McpEndpoint, options: ConnectOptions): Transport {
  if (!server.command || !options.stdioCommands.includes(server.command)) {
    throw new ToolRunError('mcp_command_not_allowed', `the command of the MCP server "${server.name}" is not in MCP_STDIO_COMMANDS`);
  }
  // Nothing of this process's environment (keys, database URLs) reaches the child: only what the options give.
  return new StdioClientTransport({ command: server.command, args: server.args, cwd: options.stdio.cwd, env: options.stdio.env, stderr: 'ignore' });
}

/**
 * Opens one session with a server, runs `use` and closes it again (a stdio server's process ends with it). One session
 * per use keeps no state between calls that a dead server or a changed configuration could leave stale.
 */
export async function withMcpSession<T>(server: McpEndpoint, options: ConnectOptions, use: (session: McpSession) => Promise<T>): Promise<T> {
  let transport: RecordingTransport | undefined;
  const client = new Client({ name: 'cdsa', version: '1' }, { capabilities: {} });
  try {
    transport = new RecordingTransport(server.transport === 'stdio' ? stdioTransport(server, options) : httpTransport(server, options));
    options.signal.throwIfAborted();
    await client.connect(transport, { signal: options.signal, timeout: options.timeoutMs });
    return await use({ client, protocolVersion: transport.protocolVersion, serverInfo: client.getServerVersion() });
  } catch (error) {
    throw describeMcpFailure(server, error, options.signal, options.timeoutMs);
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** Every tool the server lists (following its pages), at most MAX_LISTED_TOOLS. */
export async function listAllTools(session: McpSession, options: Pick<ConnectOptions, 'signal' | 'timeoutMs'>): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await session.client.listTools(cursor === undefined ? {} : { cursor }, { signal: options.signal, timeout: options.timeoutMs });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor !== undefined && tools.length < MAX_LISTED_TOOLS);
  return tools.slice(0, MAX_LISTED_TOOLS);
}

/**
 * A tool call's result as CDSA stores and shows it: where it came from, marked as untrusted (the model reads it as data
 * from outside, never as instructions: whatever it asks for still goes through the approval gate), the content blocks
 * and any structured content. A result the server marks as an error is a failed run, with the server's text as reason.
 */
export async function callMcpTool(
  session: McpSession,
  server: Pick<McpEndpoint, 'name'>,
  tool: string,
  args: Record<string, unknown>,
  options: Pick<ConnectOptions, 'signal' | 'timeoutMs'> & { maxResultBytes: number },
): Promise<unknown> {
  const result = (await session.client.callTool({ name: tool, arguments: args }, undefined, {
    signal: options.signal,
    timeout: options.timeoutMs,
    maxTotalTimeout: options.timeoutMs,
  })) as CallToolResult;
  const content = Array.isArray(result.content) ? result.content : [];
  if (result.isError === true) {
    const text = content.map((block) => (block.type === 'text' ? block.text : '')).join(' ');
    throw new ToolRunError('mcp_tool_error', `the MCP tool "${tool}" of "${server.name}" reported an error: ${short(text) || 'no detail'}`);
  }
  const shaped: Record<string, unknown> = { source: `mcp:${server.name}/${tool}`, untrusted: true, content };
  if (result.structuredContent !== undefined) shaped.structured_content = result.structuredContent;
  const bytes = Buffer.byteLength(JSON.stringify(shaped), 'utf8');
  if (bytes > options.maxResultBytes) throw new ToolRunError('too_large', `the result of "${tool}" is larger than ${options.maxResultBytes} bytes`);
  return shaped;
}

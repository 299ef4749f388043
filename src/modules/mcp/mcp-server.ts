import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AppError, NotFoundError } from '../../lib/errors.js';
import type { Actor, RequestContext } from '../auth/permissions.js';
import type { DocumentsModule } from '../documents/index.js';
import type { ServedToolOutcome, ServedToolRuntime } from '../tools/tool-engine.js';

/** The two tools CDSA offers of its own, beside the CDSA tools the key's user may run. */
export const SEARCH_DOCUMENTS = 'search_documents';
export const GET_DOCUMENT = 'get_document';
const OWN_TOOLS = new Set([SEARCH_DOCUMENTS, GET_DOCUMENT]);
export const SEARCH_DEFAULT_LIMIT = 8;
export const SEARCH_MAX_LIMIT = 50;
/** Passages of one document returned by `get_document`, at most (the rest by search). */
export const GET_DOCUMENT_MAX_PASSAGES = 200;
/** Approvers named in a pending result, at most. */
const NAMED_APPROVERS = 10;

const SearchArgs = Type.Object(
  {
    query: Type.String({ minLength: 1, maxLength: 1000, description: 'What to look for, in a few words' }),
    mode: Type.Optional(Type.Union([Type.Literal('hybrid'), Type.Literal('keyword'), Type.Literal('vector')], { description: 'Default: hybrid where vector search is available, else keyword' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: SEARCH_MAX_LIMIT, description: `Passages to return (default ${SEARCH_DEFAULT_LIMIT})` })),
  },
  { additionalProperties: false },
);

const GetDocumentArgs = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'The document id (document_id of a search result)' }) },
  { additionalProperties: false },
);

export interface CdsaMcpServerDeps {
  version: string;
  documents: Pick<DocumentsModule, 'search' | 'documentPassages' | 'get'>;
  tools: ServedToolRuntime;
  /** Usernames of users by id, to say who was asked for an approval. */
  displayNames(ids: readonly string[]): Promise<Map<string, { username: string; full_name: string | null }>>;
}

/** Who is calling: the key's user as at this request, and the key the approvals of its calls are bound to. */
export interface McpCaller {
  actor: Actor;
  apiKeyId: string;
  context: RequestContext;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function errorResult(message: string, structured?: Record<string, unknown>): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: message }], ...(structured ? { structuredContent: structured } : {}) };
}

function toolSchema(schema: TSchema): Tool['inputSchema'] {
  return JSON.parse(JSON.stringify(schema)) as Tool['inputSchema'];
}

function checkArgs<T extends TSchema>(schema: T, args: unknown): { ok: true; value: Static<T> } | { ok: false; message: string } {
  if (Value.Check(schema, args)) return { ok: true, value: args };
  const issues = [...Value.Errors(schema, args)].slice(0, 5).map((issue) => `${issue.path || '/'} ${issue.message}`);
  return { ok: false, message: `The arguments are invalid: ${issues.join('; ')}` };
}

const OWN_TOOL_LIST: Tool[] = [
  {
    name: SEARCH_DOCUMENTS,
    title: 'Search documents',
    description:
      'Searches the documents this API key’s user may read (their clearance, shares and visibility decide) and returns the most relevant passages, each with its document id, title, page and classification label.',
    inputSchema: toolSchema(SearchArgs),
    annotations: { readOnlyHint: true, openWorldHint: false },
  },
  {
    name: GET_DOCUMENT,
    title: 'Get a document',
    description:
      'One document the user may read: its metadata and its text passages in reading order. A document above the user’s clearance, or not shared with them, is not found.',
    inputSchema: toolSchema(GetDocumentArgs),
    annotations: { readOnlyHint: true, openWorldHint: false },
  },
];

/**
 * CDSA as an MCP server, for one request: the SDK's low-level `Server` (the tool list is the caller's, and CDSA
 * tools come with their own JSON Schemas, so the zod-typed `McpServer` helpers would only be in the way). Every tool
 * runs with the rights of the key's user at this request; CDSA tools go through the tool engine (role, schema,
 * approval, run, output check, store, audit), exactly as a chat or `/tools/{id}/execute` call does.
 */
export function createCdsaMcpServer(deps: CdsaMcpServerDeps, caller: McpCaller): Server {
  const server = new Server(
    { name: 'cdsa', title: 'CDSA — Confidential Data Steward Agent', version: deps.version },
    {
      capabilities: { tools: {} },
      instructions:
        'Tools run as the API key’s user. A tool that needs approval does not run when first called: the result names the approval and who was asked. ' +
        'Once a different, senior person has approved it, make the same call with the same arguments again: it then runs once and returns its result.',
    },
  );

  server.setRequestHandler(ListToolsRequestSchema, async () => {
    const cdsaTools = await deps.tools.listForActor(caller.actor);
    const offered: Tool[] = cdsaTools
      // Ours win: the chat's own `search_documents` tool is the same search, offered here with the MCP arguments.
      .filter((tool) => !OWN_TOOLS.has(tool.name))
      .map((tool) => ({ name: tool.name, description: tool.description, inputSchema: { ...(tool.input_schema as Record<string, unknown>), type: 'object' } as Tool['inputSchema'] }));
    return { tools: [...OWN_TOOL_LIST, ...offered] };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request): Promise<CallToolResult> => {
    const { name } = request.params;
    const args: unknown = request.params.arguments ?? {};
    if (name === SEARCH_DOCUMENTS) return searchDocuments(deps, caller, args);
    if (name === GET_DOCUMENT) return getDocument(deps, caller, args);
    const known = (await deps.tools.listForActor(caller.actor)).some((tool) => tool.name === name);
    if (!known) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
    const outcome = await deps.tools.call(caller.actor, name, args, { bindingId: caller.apiKeyId, context: caller.context });
    return presentOutcome(deps, name, outcome);
  });

  return server;
}

async function searchDocuments(deps: CdsaMcpServerDeps, caller: McpCaller, args: unknown): Promise<CallToolResult> {
  const checked = checkArgs(SearchArgs, args);
  if (!checked.ok) return errorResult(checked.message);
  const { query, mode, limit } = checked.value;
  const found = await deps.documents.search(caller.actor, { query, ...(mode ? { mode } : {}), top_k: limit ?? SEARCH_DEFAULT_LIMIT }, caller.context);
  const structured = {
    mode_used: found.mode_used,
    mode_reason: found.mode_reason,
    results: found.items.map((hit) => ({
      chunk_id: hit.chunk_id,
      document_id: hit.document_id,
      document_title: hit.document_title,
      label: hit.label,
      page: hit.page,
      heading_path: hit.heading_path,
      text: hit.text,
      score: hit.score,
    })),
  };
  return { content: [{ type: 'text', text: text(structured) }], structuredContent: structured };
}

async function getDocument(deps: CdsaMcpServerDeps, caller: McpCaller, args: unknown): Promise<CallToolResult> {
  const checked = checkArgs(GetDocumentArgs, args);
  if (!checked.ok) return errorResult(checked.message);
  const { id } = checked.value;
  try {
    // Content first: its query holds the clearance rule, so a document the user may not read is "not found" here,
    // even for an administrator who may see every document's metadata.
    const passages = await deps.documents.documentPassages(caller.actor, id, { limit: GET_DOCUMENT_MAX_PASSAGES }, caller.context);
    const document = await deps.documents.get(caller.actor, id);
    const structured = {
      document: {
        id: document.id,
        title: document.title,
        filename: document.filename,
        mime_type: document.mime_type,
        label: document.label,
        tags: document.tags,
        status: document.status,
        page_count: document.page_count,
        chunk_count: document.chunk_count,
        owner_id: document.owner_id,
        created_at: document.created_at,
        updated_at: document.updated_at,
      },
      passages: passages.map((passage) => ({ chunk_id: passage.chunk_id, index: passage.index, page: passage.page, heading_path: passage.heading_path, text: passage.text })),
      truncated: document.chunk_count !== null && document.chunk_count > passages.length,
    };
    return { content: [{ type: 'text', text: text(structured) }], structuredContent: structured };
  } catch (error) {
    if (error instanceof NotFoundError) return errorResult(`Document ${id} not found`);
    if (error instanceof AppError && error.status < 500) return errorResult(error.message);
    throw error;
  }
}

/**
 * A CDSA tool's outcome as an MCP tool result. Waiting for approval is not an error (`isError: false`): the request
 * was taken and will run once approved, and the client is to call again. A call that did not run and will not
 * (rejected, expired, refused, failed) is `isError: true`, so a model does not read it as done.
 */
async function presentOutcome(deps: CdsaMcpServerDeps, tool: string, outcome: ServedToolOutcome): Promise<CallToolResult> {
  switch (outcome.status) {
    case 'completed':
      return {
        content: [{ type: 'text', text: text(outcome.result) }],
        structuredContent: { status: 'completed', execution_id: outcome.execution_id, cached: outcome.cached, result: outcome.result },
      };
    case 'pending_approval': {
      const names = await deps.displayNames(outcome.approver_ids.slice(0, NAMED_APPROVERS));
      const approvers = outcome.approver_ids.slice(0, NAMED_APPROVERS).map((id) => ({ user_id: id, username: names.get(id)?.username ?? null }));
      const asked = approvers.length > 0 ? approvers.map((approver) => approver.username ?? approver.user_id).join(', ') : 'nobody yet (no active approver)';
      return {
        isError: false,
        content: [
          {
            type: 'text',
            text:
              `The call of "${tool}" has NOT run: it needs approval by ${outcome.approvals_required} ${outcome.approver_role} (or higher) other than you. ` +
              `Approval ${outcome.approval_id} was requested from: ${asked}; it expires at ${outcome.expires_at}. ` +
              'Once it is approved, make the same call with the same arguments again: it then runs once and returns its result.',
          },
        ],
        structuredContent: {
          status: 'pending_approval',
          approval_id: outcome.approval_id,
          execution_id: outcome.execution_id,
          approver_role: outcome.approver_role,
          approvals_required: outcome.approvals_required,
          approvers,
          approver_count: outcome.approver_ids.length,
          expires_at: outcome.expires_at,
        },
      };
    }
    case 'rejected':
      return errorResult(`The call of "${tool}" was rejected by an approver and did not run${outcome.reason ? `: ${outcome.reason}` : ''}.`, {
        status: 'rejected',
        execution_id: outcome.execution_id,
        reason: outcome.reason,
      });
    case 'expired':
      return errorResult(`The approval of this call of "${tool}" expired before anyone decided; the call did not run.`, {
        status: 'expired',
        execution_id: outcome.execution_id,
        reason: outcome.reason,
      });
    case 'interrupted':
      return errorResult(`The call of "${tool}" was interrupted: ${outcome.error}`, { status: 'interrupted', execution_id: outcome.execution_id, error: outcome.error });
    case 'failed':
      return errorResult(outcome.error, { status: 'failed', execution_id: outcome.execution_id, error: outcome.error });
  }
}

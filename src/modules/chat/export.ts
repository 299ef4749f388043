import type { Citation } from './grounding.js';
import type { SessionDetail } from './presenters.js';

export type ExportFormat = 'json' | 'markdown';

export interface ExportedSession {
  body: string;
  contentType: string;
  filename: string;
}

/** A session as a downloadable document: its JSON view, or Markdown for people. */
export function exportDocument(detail: SessionDetail, format: ExportFormat, exportedAt: string): ExportedSession {
  if (format === 'json') {
    return {
      body: JSON.stringify({ ...detail, exported_at: exportedAt }, null, 2),
      contentType: 'application/json; charset=utf-8',
      filename: `chat-${detail.id}.json`,
    };
  }
  return { body: toMarkdown(detail, exportedAt), contentType: 'text/markdown; charset=utf-8', filename: `chat-${detail.id}.md` };
}

function toMarkdown(detail: SessionDetail, exportedAt: string): string {
  const blocks: string[] = [
    `# ${detail.title.replace(/\s+/g, ' ')}`,
    [`- Session: ${detail.id}`, `- Model: ${detail.model}`, `- Label: ${detail.label}`, `- Created: ${detail.created_at}`, `- Exported: ${exportedAt}`].join('\n'),
  ];
  for (const message of detail.messages) {
    const who =
      message.role === 'user'
        ? 'User'
        : message.role === 'assistant'
          ? `Assistant (${message.model ?? 'unknown model'})`
          : `Tool result: ${message.tool_name ?? 'tool'}`;
    const status = message.status === 'completed' ? '' : ` (${message.status})`;
    blocks.push(`## ${who}${status}`, `_${message.created_at}_`);
    if (message.content !== '') blocks.push(message.role === 'tool' ? fenced(message.content) : message.content);
    for (const call of message.tool_calls ?? []) {
      blocks.push(`Tool call \`${call.tool}\` (${call.tool_call_id}):`, fenced(JSON.stringify(call.args, null, 2)));
    }
    if (message.routed_to) blocks.push(`_Routed to ${message.routed_to}: the conversation holds ${message.label ?? 'labelled'} content._`);
    if (message.citations && message.citations.length > 0) blocks.push(sources(message.citations));
  }
  return `${blocks.join('\n\n')}\n`;
}

/** The passages an answer was given, as a list its `[n]` references resolve against. */
function sources(citations: readonly Citation[]): string {
  const lines = citations.map((c) => {
    const title = c.title.replace(/\s+/g, ' ').trim() || 'Untitled';
    const page = c.page === null ? '' : `, page ${c.page}`;
    return `- [${c.n}] ${title}${page} (${c.label}; document ${c.document_id}, passage ${c.chunk_id})`;
  });
  return ['Sources:', ...lines].join('\n');
}

/** A JSON code block whose fence is longer than any backtick run inside it. */
function fenced(json: string): string {
  const longest = Math.max(2, ...[...json.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}json\n${json}\n${fence}`;
}

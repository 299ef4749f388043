import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';

/** A source the answer may cite as `[n]`: the marker becomes a link to the passage in the document viewer. */
export interface CitationLink {
  n: number;
  href: string;
  title: string;
}

interface Env {
  citations?: CitationLink[];
}

// Model output is untrusted: raw HTML is never interpreted (html: false escapes it), links are limited to http(s)
// and mailto by markdown-it's validator, and the result still goes through DOMPurify before it touches the DOM.
const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false });
const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  // Citation markers stay in the console (the router handles them); other links open apart, without a referrer.
  if (tokens[idx].attrGet('data-cite') === null) {
    tokens[idx].attrSet('rel', 'noopener noreferrer nofollow');
    tokens[idx].attrSet('target', '_blank');
  }
  return defaultLinkOpen(tokens, idx, options, env, self);
};

type Token = ReturnType<typeof md.parse>[number];
type CoreState = Parameters<Parameters<typeof md.core.ruler.push>[1]>[0];

const MARKER = /\[(\d{1,3})\]/g;
const HAS_MARKER = /\[\d{1,3}\]/;

// `[n]` in plain text (not inside a link or code) becomes a link to source n, when the answer has such a source.
md.core.ruler.push('citation_markers', (state) => {
  const citations = (state.env as Env).citations ?? [];
  if (citations.length === 0) return;
  const byNumber = new Map(citations.map((c) => [c.n, c]));
  for (const block of state.tokens) {
    if (block.type !== 'inline' || !block.children) continue;
    const out: Token[] = [];
    let linkDepth = 0;
    for (const token of block.children) {
      if (token.type === 'link_open') linkDepth += 1;
      if (token.type === 'link_close') linkDepth -= 1;
      if (token.type !== 'text' || linkDepth > 0 || !HAS_MARKER.test(token.content)) {
        out.push(token);
        continue;
      }
      let last = 0;
      for (const match of token.content.matchAll(MARKER)) {
        const source = byNumber.get(Number(match[1]));
        if (!source) continue;
        if (match.index > last) out.push(textToken(state, token.content.slice(last, match.index)));
        const open = new state.Token('link_open', 'a', 1);
        open.attrs = [
          ['href', source.href],
          ['class', 'cite'],
          ['data-cite', String(source.n)],
          ['title', `Source ${source.n}: ${source.title}`],
        ];
        out.push(open, textToken(state, `[${source.n}]`), new state.Token('link_close', 'a', -1));
        last = match.index + match[0].length;
      }
      if (last < token.content.length) out.push(textToken(state, token.content.slice(last)));
    }
    block.children = out;
  }
});

function textToken(state: CoreState, content: string): Token {
  const token = new state.Token('text', '', 0);
  token.content = content;
  return token;
}

export function renderMarkdown(text: string, citations: CitationLink[] = []): string {
  return DOMPurify.sanitize(md.render(text, { citations } satisfies Env), { USE_PROFILES: { html: true }, ADD_ATTR: ['target'] });
}

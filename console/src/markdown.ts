import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';

// Model output is untrusted: raw HTML is never interpreted (html: false escapes it), links are limited to http(s)
// and mailto by markdown-it's validator, and the result still goes through DOMPurify before it touches the DOM.
const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false });
const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet('rel', 'noopener noreferrer nofollow');
  tokens[idx].attrSet('target', '_blank');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(md.render(text), { USE_PROFILES: { html: true }, ADD_ATTR: ['target'] });
}

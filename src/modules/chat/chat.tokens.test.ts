import { Tiktoken } from 'js-tiktoken/lite';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import { beforeAll, describe, expect, it } from 'vitest';
import { countTokens, loadTokenizer } from './chat.tokens.js';

// The library's own whole-text count is the reference: counting piece by piece (with the cache) must agree exactly.
const reference = new Tiktoken(cl100k);
const exact = (text: string) => reference.encode(text, [], []).length;

const SAMPLES = [
  'Please write to Jane Doe at jane.doe@example.com about the Berlin office.',
  'a   b\t\tc \n\n  d\r\n\r\n e     ',
  '   leading and trailing   ',
  "It's what they'LL do, isn't it? We've REALLY seen 'em.",
  'Numbers: 1234567890 3.14159 -42 1e10 0x1F 2026-12-03T11:00:00Z',
  'Ünïcödé: naïve café, Grüße aus Köln, 東京都渋谷区, Ελληνικά, русский текст, 🙂🚀 emoji',
  'function f(x) {\n  return x.map((y) => y * 2).filter(Boolean);\n}\n\n\n',
  'Special tokens as text: <|endoftext|> and <|fim_prefix|> are counted, not rejected.',
  'IBAN DE89370400440532013000, card 4111 1111 1111 1111, phone +49 30 1234567',
  'x'.repeat(500) + ' ' + 'ab'.repeat(100) + ' base64:' + Buffer.from('a'.repeat(300)).toString('base64'),
  '\n',
  ' ',
  '',
];

describe('countTokens', () => {
  beforeAll(async () => {
    await loadTokenizer();
  });

  it('gives the same count as encoding the whole text, for words, whitespace runs, contractions, numbers, scripts and special-token text', () => {
    for (const text of SAMPLES) expect(countTokens(text), JSON.stringify(text.slice(0, 40))).toBe(exact(text));
  });

  it('gives the same count again once the pieces are cached, and for texts that mix cached and new pieces', () => {
    for (const text of SAMPLES) expect(countTokens(text)).toBe(exact(text));
    const mixed = SAMPLES.join(' ') + ' unseen-piece-' + 'q'.repeat(40);
    expect(countTokens(mixed)).toBe(exact(mixed));
    for (let i = 0; i < 50; i += 1) {
      const text = `${SAMPLES[i % SAMPLES.length]}${i}  \n${' '.repeat(i % 5)}word${i}`;
      expect(countTokens(text)).toBe(exact(text));
    }
  });
});

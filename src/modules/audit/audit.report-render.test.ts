import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createChunkSink, csvField } from './audit.report-render.js';

describe('report rendering helpers', () => {
  it('quotes every CSV field and defuses spreadsheet formulas', () => {
    expect(csvField(null)).toBe('""');
    expect(csvField(12)).toBe('"12"');
    expect(csvField('plain')).toBe('"plain"');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"\nthere')).toBe('"say ""hi""\nthere"');
    expect(csvField('=1+1')).toBe('"\'=1+1"');
    expect(csvField('@SUM(A1)')).toBe('"\'@SUM(A1)"');
    expect(csvField({ a: '=x', b: [1] })).toBe('"{""a"":""=x"",""b"":[1]}"');
  });

  it('defuses a formula after any separator a spreadsheet might split on, not only at the start', () => {
    const agent = "x;=cmd|' /C calc'!A0";
    expect(csvField(agent)).toBe('"x;\'=cmd|\' /C calc\'!A0"');
    for (const separator of [',', ';', '\t', '|', '\n', '\r']) {
      for (const starter of ['=', '+', '-', '@']) {
        const field = csvField(`a${separator}${starter}HYPERLINK("http://evil")`);
        expect(field, JSON.stringify(separator + starter)).toContain(`${separator}'${starter}`);
      }
    }
    expect(csvField('\t\t=1')).toBe('"\'\t\'\t\'=1"');
    expect(csvField({ note: 'a;-2+3' })).toBe('"{""note"":""a;\'-2+3""}"');
  });

  it('hands the document over in bounded chunks with its size and digest', async () => {
    const stored: Buffer[] = [];
    const sink = createChunkSink(async (idx, data) => {
      expect(idx).toBe(stored.length);
      stored.push(data);
    }, 1_000);
    const pieces = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x'.repeat(90)}\n`);
    for (const piece of pieces) await sink.write(piece);
    const { size, sha256 } = await sink.finish();
    const whole = Buffer.concat(stored);
    expect(whole.toString()).toBe(pieces.join(''));
    expect(size).toBe(whole.length);
    expect(sha256).toBe(createHash('sha256').update(whole).digest('hex'));
    expect(stored.length).toBeGreaterThan(3);
    expect(Math.max(...stored.map((chunk) => chunk.length))).toBeLessThan(1_200);
  });
});

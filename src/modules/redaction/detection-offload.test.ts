import { afterEach, describe, expect, it } from 'vitest';
import { createDetectionOffload, longStrings, type DetectionOffload } from './detection-offload.js';
import { detectPii } from './detectors.js';
import { DEFAULT_REDACTION_POLICY } from './policy.js';
import { isDetectionKnown, PlaceholderVault } from './redactor.js';

const offloads: DetectionOffload[] = [];
afterEach(async () => {
  for (const offload of offloads.splice(0)) await offload.close();
});

async function offload(workers = 1, minChars = 1_000): Promise<DetectionOffload> {
  const created = createDetectionOffload({ workers, minChars });
  offloads.push(created);
  await created.warm();
  return created;
}

/** A long pasted text with personal data spread through it; `tag` makes each one a different text. */
function longText(tag: string, paragraphs: number): string {
  return Array.from(
    { length: paragraphs },
    (_, i) => `Paragraph ${i} (${tag}): the claim was filed by Jane Roe (jane.roe${i}@example.com, +44 20 7946 0${String(100 + (i % 800)).padStart(3, '0')}) about card 4111 1111 1111 1111; the board met in Berlin to review it.`,
  ).join('\n');
}

describe('long-text detection on worker threads', () => {
  it('collects the long strings of a message list, keys included, once each', () => {
    const long = 'x'.repeat(50);
    const found = longStrings([{ content: long, parts: [{ text: long }, 'short'] }, { [long + 'k']: 1 }], 40);
    expect([...found]).toEqual([long, `${long}k`]);
  });

  it('primes the redactor with exactly what in-place detection finds, so the same placeholders result', async () => {
    const text = longText('same', 60);
    expect(isDetectionKnown(text)).toBe(false);
    await (await offload()).prefetch([{ role: 'user', content: text }], 60_000);
    expect(isDetectionKnown(text)).toBe(true);
    const generous = { ...DEFAULT_REDACTION_POLICY, timeBudgetMs: 60_000 };
    const primedRedaction = new PlaceholderVault().redact(text, generous);
    const inPlace = new PlaceholderVault().redact(`${text} `, generous);
    expect(primedRedaction.text).toBe(inPlace.text.slice(0, -1));
    expect(detectPii(text)).toEqual(detectPii(text));
  });

  it('keeps the event loop free while a long text is detected', async () => {
    const text = longText('loop', 3_000);
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns += 1;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    await (await offload()).prefetch(text, 60_000);
    spinning = false;
    expect(isDetectionKnown(text)).toBe(true);
    // In place, detection is one synchronous call: no other callback could run until it returned.
    expect(turns).toBeGreaterThan(1);
  });

  it('a detection that overran its budget on a worker primes nothing: the text is detected in place', async () => {
    const text = longText('slow', 400);
    await (await offload()).prefetch(text, 0.001);
    expect(isDetectionKnown(text)).toBe(false);
    expect(new PlaceholderVault().redact(text, { ...DEFAULT_REDACTION_POLICY, timeBudgetMs: 60_000 }).text).toContain('[EMAIL_1]');
  });

  it('a worker that is gone leaves the text to in-place detection, which still redacts it', async () => {
    const created = await offload();
    const text = longText('gone', 40);
    const pending = created.prefetch(text, 250);
    await created.close();
    await pending;
    const redacted = new PlaceholderVault().redact(text, { ...DEFAULT_REDACTION_POLICY, timeBudgetMs: 60_000 }).text;
    expect(redacted).not.toContain('jane.roe');
    expect(redacted).toContain('[EMAIL_1]');
  });

  it('detects in place while the workers are still starting', async () => {
    const created = createDetectionOffload({ workers: 1, minChars: 1_000 });
    offloads.push(created);
    const text = longText('cold', 30);
    await created.prefetch(text, 250);
    expect(isDetectionKnown(text)).toBe(false);
  });

  it('does nothing with workers: 0 or for short texts', async () => {
    const text = longText('off', 30);
    await (await offload(0)).prefetch(text, 250);
    await (await offload(1, 10_000_000)).prefetch(text, 250);
    expect(isDetectionKnown(text)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { createWriteBatcher } from './write-batcher.js';

/** A fake database: records each statement's writes; a write of 'bad' fails whatever statement it is in. */
function fakeStore() {
  const statements: string[][] = [];
  let release: (() => void) | undefined;
  const gate = { hold: false };
  const statement = async (items: string[]) => {
    statements.push(items);
    if (gate.hold) await new Promise<void>((resolve) => (release = resolve));
    if (items.includes('bad')) throw new Error('constraint violated');
    return items.map((item) => `stored ${item}`);
  };
  return {
    statements,
    gate,
    open: () => {
      gate.hold = false;
      release?.();
    },
    batcher: createWriteBatcher<string, string>({
      writeMany: statement,
      writeOne: async (item) => (await statement([item]))[0]!,
      maxBatch: 3,
    }),
  };
}

describe('createWriteBatcher', () => {
  it('sends a write alone when nothing else waits, through the single-write statement', async () => {
    const { batcher, statements } = fakeStore();
    expect(await batcher.write('a')).toBe('stored a');
    expect(statements).toEqual([['a']]);
  });

  it('groups writes that arrive while a statement runs, bounded by maxBatch, each caller getting its own result', async () => {
    const { batcher, statements, gate, open } = fakeStore();
    gate.hold = true;
    const first = batcher.write('a');
    await Promise.resolve();
    await Promise.resolve();
    const rest = ['b', 'c', 'd', 'e', 'f'].map((item) => batcher.write(item));
    open();
    expect(await Promise.all([first, ...rest])).toEqual(['stored a', 'stored b', 'stored c', 'stored d', 'stored e', 'stored f']);
    expect(statements).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
  });

  it('writes in the same synchronous run go together', async () => {
    const { batcher, statements } = fakeStore();
    await Promise.all([batcher.write('a'), batcher.write('b')]);
    expect(statements).toEqual([['a', 'b']]);
  });

  it('retries a failed group one write at a time, so only the bad write rejects', async () => {
    const { batcher, statements } = fakeStore();
    const outcomes = await Promise.allSettled([batcher.write('a'), batcher.write('bad'), batcher.write('c')]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([
      'stored a',
      'constraint violated',
      'stored c',
    ]);
    expect(statements).toEqual([['a', 'bad', 'c'], ['a'], ['bad'], ['c']]);
  });

  it('drain waits for every queued write', async () => {
    const { batcher } = fakeStore();
    let done = 0;
    for (const item of ['a', 'b', 'c', 'd']) void batcher.write(item).then(() => (done += 1));
    await batcher.drain();
    await Promise.resolve();
    expect(done).toBe(4);
  });
});

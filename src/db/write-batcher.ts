/**
 * Groups independent single-statement writes from concurrent requests (each chat turn's message, each model call's
 * usage) into one statement per group, the way the audit recorder groups its events: while one group is being
 * written, the writes that arrive meanwhile wait and go in the next one together. Under load that is one round trip
 * and one pooled connection for many requests instead of one each; with nothing else waiting, a write goes alone,
 * through its ordinary single-row statement, as soon as the current synchronous run ends.
 *
 * Each caller still gets its own outcome, and only once its write is committed (a group is one statement, so it commits
 * whole or not at all). A group that fails is retried one write at a time, so one bad write rejects alone.
 */
export interface WriteBatcher<I, O> {
  write(item: I): Promise<O>;
  /** Resolves when every write queued so far is done (used on shutdown and by tests). */
  drain(): Promise<void>;
}

export interface WriteBatcherOptions<I, O> {
  /** One statement for the whole group; results in the order of `items`. */
  writeMany(items: I[]): Promise<O[]>;
  /** The ordinary statement for one write (a group of one, and the retry of a failed group). */
  writeOne(item: I): Promise<O>;
  /** Most writes in one statement (bounded so one statement stays short). */
  maxBatch?: number;
}

interface Queued<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export function createWriteBatcher<I, O>({ writeMany, writeOne, maxBatch = 200 }: WriteBatcherOptions<I, O>): WriteBatcher<I, O> {
  let queue: Array<Queued<I, O>> = [];
  let flushing: Promise<void> | null = null;

  function startFlush(): void {
    if (flushing) return;
    flushing = Promise.resolve()
      .then(flush)
      .finally(() => {
        flushing = null;
        // A write queued between the loop's last check and this callback still goes out.
        if (queue.length > 0) startFlush();
      });
  }

  async function one(entry: Queued<I, O>): Promise<void> {
    try {
      entry.resolve(await writeOne(entry.item));
    } catch (error) {
      entry.reject(error);
    }
  }

  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      if (batch.length === 1) {
        await one(batch[0]!);
        continue;
      }
      let results: O[];
      try {
        results = await writeMany(batch.map((entry) => entry.item));
        if (results.length !== batch.length) throw new Error(`a grouped write returned ${results.length} results for ${batch.length} writes`);
      } catch {
        // Nothing of the group was written (one statement): each write is tried on its own, so only a bad one fails.
        for (const entry of batch) await one(entry);
        continue;
      }
      batch.forEach((entry, index) => entry.resolve(results[index]!));
    }
  }

  return {
    write(item: I): Promise<O> {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        startFlush();
      });
    },
    async drain(): Promise<void> {
      while (flushing) await flushing;
    },
  };
}

/**
 * Tool definitions as the execution path reads them, kept briefly in memory so a call does not cost a database
 * round trip for its lookup. Every change clears the cache at once on the instance that made it and, through pub/sub,
 * on the others; `ttlMs` bounds how stale a definition can be should that message be lost. Approved calls re-read
 * their tool inside the claiming transaction, so they never run on a cached definition.
 */
export function createDefinitionCache<T>(options: { ttlMs: number; maxEntries?: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 1_000;
  const entries = new Map<string, { value: T; at: number }>();
  // A lookup that started before a clear must not store what it read: it may be the old definition.
  let generation = 0;

  return {
    get(key: string): T | undefined {
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (now() - entry.at > options.ttlMs) {
        entries.delete(key);
        return undefined;
      }
      return entry.value;
    },

    /** Where a lookup starts; pass it to `set` so a clear that happened meanwhile wins. */
    generation(): number {
      return generation;
    },

    set(key: string, value: T, startedAt: number): void {
      if (startedAt !== generation) return;
      if (entries.size >= maxEntries) entries.clear();
      entries.set(key, { value, at: now() });
    },

    /**
     * The cached value, or what `load` reads (kept unless a clear happened meanwhile, or it found nothing). With a
     * lifetime of 0 nothing is cached: every call reads.
     */
    async getOrLoad(key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
      if (options.ttlMs <= 0) return load();
      const hit = this.get(key);
      if (hit !== undefined) return hit;
      const startedAt = this.generation();
      const value = await load();
      if (value !== undefined) this.set(key, value, startedAt);
      return value;
    },

    clear(): void {
      generation += 1;
      entries.clear();
    },
  };
}

export type DefinitionCache<T> = ReturnType<typeof createDefinitionCache<T>>;

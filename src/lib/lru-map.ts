/**
 * A Map bounded to `capacity` entries that drops the least recently used one first. A Map iterates in insertion
 * order, so re-inserting an entry when it is used keeps the least recently used one at the front.
 */
export class LruMap<K, V> {
  // Each entry keeps the key it was stored with: re-inserting on use stores that one again, never the caller's
  // (an equal string may be a slice that would keep a much longer string alive).
  readonly #entries = new Map<K, { key: K; value: V }>();
  // Re-inserting is skipped when the key already is the newest (the common case of one hot key).
  #newest: K | undefined;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value, marked most recently used. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.key !== this.#newest) {
      this.#entries.delete(entry.key);
      this.#entries.set(entry.key, entry);
      this.#newest = entry.key;
    }
    return entry.value;
  }

  /** Stores the value as most recently used; returns the entry dropped to stay within capacity, if one was. */
  set(key: K, value: V): [K, V] | undefined {
    this.#entries.delete(key);
    this.#entries.set(key, { key, value });
    this.#newest = key;
    if (this.#entries.size <= this.capacity) return undefined;
    const oldest = this.#entries.values().next().value as { key: K; value: V };
    this.#entries.delete(oldest.key);
    return [oldest.key, oldest.value];
  }

  delete(key: K): boolean {
    if (key === this.#newest) this.#newest = undefined;
    return this.#entries.delete(key);
  }
}

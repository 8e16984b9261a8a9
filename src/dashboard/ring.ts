/**
 * A bounded, numbered log of recent entries (configuration changes, logged problems): the newest
 * `capacity` are kept, each numbered in order so a reader can ask for what it has not seen yet.
 */

export type Numbered<T> = T & { readonly seq: number };

export class Ring<T extends object> {
  private readonly slots: (Numbered<T> | undefined)[];
  private last = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.slots = new Array<Numbered<T> | undefined>(capacity);
  }

  /** Number of the newest entry; 0 while empty. */
  get lastSeq(): number {
    return this.last;
  }

  push(entry: T): Numbered<T> {
    const numbered = { ...entry, seq: ++this.last } as Numbered<T>;
    this.slots[this.last % this.capacity] = numbered;
    return numbered;
  }

  /** Entries numbered after `seq` that are still kept, oldest first. */
  since(seq: number): Numbered<T>[] {
    const first = Math.max(seq + 1, this.last - this.capacity + 1, 1);
    const found: Numbered<T>[] = [];
    for (let n = first; n <= this.last; n++) {
      const entry = this.slots[n % this.capacity];
      if (entry !== undefined) found.push(entry);
    }
    return found;
  }

  /** Every entry kept, oldest first. */
  entries(): Numbered<T>[] {
    return this.since(0);
  }
}

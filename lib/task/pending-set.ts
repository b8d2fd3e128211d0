/**
 * The queue's pending set: what waits for a slot, in dispatch order (priority descending,
 * FIFO within a priority). Internal to `TaskQueue`.
 * @module
 */

/**
 * Pending items: priority descending, FIFO within a priority (by time of entry). Removal is
 * O(1) and lazy (a ticket per insertion), so cancelling or dispatching from the middle of a
 * long queue costs nothing. @internal
 */
export class PendingSet<T> {
  readonly #buckets = new Map<number, { items: Array<[T, number]>; head: number }>();
  readonly #prios: number[] = [];
  readonly #tickets = new Map<T, number>();
  readonly #priorityOf: (item: T) => number;
  #next = 0;
  /** `priorityOf` is read when an item is added. */
  constructor(priorityOf: (item: T) => number) {
    this.#priorityOf = priorityOf;
  }
  /** Items waiting. */
  get size(): number {
    return this.#tickets.size;
  }
  /** Adds an item at the back of its priority (an item already in the set moves there). */
  add(e: T): void {
    const ticket = this.#next++;
    this.#tickets.set(e, ticket);
    const p = this.#priorityOf(e);
    let b = this.#buckets.get(p);
    if (!b) {
      b = { items: [], head: 0 };
      this.#buckets.set(p, b);
      let i = 0;
      while (i < this.#prios.length && this.#prios[i]! > p) i++;
      this.#prios.splice(i, 0, p);
    }
    b.items.push([e, ticket]);
  }
  /** Removes an item; `false` if it was not there. */
  delete(e: T): boolean {
    return this.#tickets.delete(e);
  }
  /** Removes every item. */
  clear(): void {
    this.#tickets.clear();
    this.#buckets.clear();
    this.#prios.length = 0;
  }
  /** The items in dispatch order (compacting a bucket's consumed head as it goes). */
  *ordered(): Generator<T> {
    for (const p of this.#prios) {
      const b = this.#buckets.get(p)!;
      const live = (x: [T, number]) => this.#tickets.get(x[0]) === x[1];
      while (b.head < b.items.length && !live(b.items[b.head]!)) b.head++;
      if (b.head > 1024 && b.head * 2 > b.items.length) {
        b.items = b.items.slice(b.head);
        b.head = 0;
      }
      for (let i = b.head; i < b.items.length; i++) {
        const x = b.items[i]!;
        if (live(x)) yield x[0];
      }
    }
  }
}

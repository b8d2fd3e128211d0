/**
 * Common shell of the built-in readers: closed state, ClosedError, dispose, filter.
 * @module
 */
import { ClosedError } from '../ebpf/errors.js';
import type { Backend, MetricReader, ResolvedFilter, SnapshotBase } from './family.js';

/** Base class of the built-in readers. Subclasses implement `collect()` and optionally `onClose()`. */
export abstract class ReaderBase<S extends SnapshotBase, E = never> implements MetricReader<S, E> {
  /** Family name. */
  abstract readonly family: string;
  /** Backend. */
  abstract readonly backend: Backend;
  #closed = false;
  /** Current filter. */
  protected filter: ResolvedFilter;

  /** Starts with `filter` (a resolved filter: see `resolveFilter`). */
  constructor(filter: ResolvedFilter) {
    this.filter = filter;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Reads a snapshot. */
  async read(): Promise<S> {
    this.check();
    return this.collect();
  }

  /** Replaces the filter. */
  setFilter(filter: ResolvedFilter): void | Promise<void> {
    this.check();
    this.filter = filter;
  }

  /** Bytes of kernel memory held (0 for procfs readers). */
  memoryBytes(): number {
    return 0;
  }

  /** Releases everything; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Throws ClosedError once closed. */
  protected check(): void {
    if (this.#closed) throw new ClosedError(`${this.family} reader`);
  }

  /** Builds one snapshot. */
  protected abstract collect(): Promise<S> | S;

  /** Releases resources (called once). */
  protected onClose(): void {}
}

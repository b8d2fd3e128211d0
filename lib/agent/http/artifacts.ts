/**
 * Artifact downloads: the task's ZIP, streamed, with its size and SHA-256 (computed once per
 * file version and cached in memory).
 * @module
 */

/** @internal SHA-256 of artifact files, keyed by task, valid while the file's size and mtime are unchanged. */
export class ArtifactCache {
  readonly #sums = new Map<string, { path: string; size: number; mtimeMs: number; sha256: Promise<string> }>();
  /** The cached entry of a task. */
  get(taskId: string): { path: string; size: number; mtimeMs: number; sha256: Promise<string> } | undefined {
    return this.#sums.get(taskId);
  }
  /** Stores an entry. */
  set(taskId: string, entry: { path: string; size: number; mtimeMs: number; sha256: Promise<string> }): void {
    this.#sums.set(taskId, entry);
  }
  /** Drops a task's entry (task deleted). */
  forget(taskId: string): void {
    this.#sums.delete(taskId);
  }
}

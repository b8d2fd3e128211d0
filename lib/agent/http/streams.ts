/**
 * Long-lived (hijacked) responses of the agent, so that close() can end them.
 * @module
 */
import type { ServerResponse } from 'node:http';

/** @internal Open follow streams; `endAll()` ends them (Fastify's close waits for open responses). */
export class StreamRegistry {
  readonly #open = new Map<ServerResponse, () => void>();
  /** Tracks a response; `end` is called by `endAll()`. Returns the untrack function. */
  add(res: ServerResponse, end: () => void): () => void {
    this.#open.set(res, end);
    return () => this.#open.delete(res);
  }
  /** How many streams are open. */
  get size(): number {
    return this.#open.size;
  }
  /** Ends every open stream (each `end` callback runs once). */
  endAll(): void {
    for (const [res, end] of [...this.#open]) {
      this.#open.delete(res);
      try {
        end();
      } catch {
        res.destroy();
      }
    }
  }
}

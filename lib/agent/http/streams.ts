/**
 * Long-lived (hijacked) responses of the agent, so that close() can end them.
 * @module
 */
import type { ServerResponse } from 'node:http';

/** @internal Open follow streams; `endAll()` ends them (Fastify's close waits for open responses). */
export class StreamRegistry {
  readonly #open = new Map<ServerResponse, () => void>();
  readonly #finishing = new Map<ServerResponse, () => boolean>();
  #changed: (() => void) | undefined;
  /**
   * Tracks a response; `end` is called by `endAll()`; `finishing()` says the stream is about to
   * end on its own (its task has finished), which `settle()` waits for. Returns the untrack function.
   */
  add(res: ServerResponse, end: () => void, finishing: () => boolean = () => false): () => void {
    this.#open.set(res, end);
    this.#finishing.set(res, finishing);
    return () => {
      this.#open.delete(res);
      this.#finishing.delete(res);
      this.#changed?.();
    };
  }
  /** Waits (at most `timeoutMs`) for the streams whose task has finished to send their last bytes. */
  async settle(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while ([...this.#finishing.values()].some((f) => f()) && Date.now() < end) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.#changed = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#changed = undefined;
    }
  }
  /** How many streams are open. */
  get size(): number {
    return this.#open.size;
  }
  /** Ends every open stream (each `end` callback runs once). */
  endAll(): void {
    for (const [res, end] of [...this.#open]) {
      this.#open.delete(res);
      this.#finishing.delete(res);
      try {
        end();
      } catch {
        res.destroy();
      }
    }
  }
}

/**
 * The program cache: loaded objects by hash of (ELF bytes + load options). A hit hands out
 * a new handle on the already-loaded object, without the verifier. Concurrent loads of the
 * same key share one load (single-flight).
 * @module
 */
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import type { ObjectCore } from './object.js';

/** Counters of the program cache. */
export interface ProgramCacheStats {
  /** Loads answered from the cache (including loads that joined one already in flight). */
  hits: number;
  /** Loads that ran the loader. */
  misses: number;
  /** Of the hits, how many joined a load that was still running (single-flight). */
  sharedInFlight: number;
  /** Objects held now. */
  entries: number;
  /** Kernel memory of the objects held now (programs + maps, fdinfo memlock), bytes. */
  bytes: number;
  /** Objects dropped to respect `maxEntries` / `maxBytes`. */
  evictions: number;
  /** Sum of the original load times of every hit, in milliseconds. */
  loadTimeSavedMs: number;
}

/** Limits of the program cache. */
export const ProgramCacheOptionsSchema = z
  .object({
    /** Most objects held (least recently used go first). Default 64. */
    maxEntries: z.number().int().min(0).optional(),
    /** Most kernel memory held, bytes. Default 512 MiB. */
    maxBytes: z.number().int().min(0).optional(),
  })
  .strict();
/** Options of {@link ProgramCache.configure}. */
export type ProgramCacheOptions = z.input<typeof ProgramCacheOptionsSchema>;

/** The cache behind `loadObject({ cache: true })`; use the {@link programCache} instance. */
export class ProgramCache {
  readonly #entries = new Map<string, ObjectCore>(); // insertion order = LRU order
  readonly #inflight = new Map<string, Promise<ObjectCore>>();
  #maxEntries = 64;
  #maxBytes = 512 * 1024 * 1024;
  #hits = 0;
  #misses = 0;
  #shared = 0;
  #evictions = 0;
  #saved = 0;

  /** Sets the limits (evicts at once if they are now exceeded). */
  configure(options: ProgramCacheOptions): void {
    const o = validate(ProgramCacheOptionsSchema, options, 'program cache options');
    if (o.maxEntries !== undefined) this.#maxEntries = o.maxEntries;
    if (o.maxBytes !== undefined) this.#maxBytes = o.maxBytes;
    this.#trim();
  }

  /** Current counters. */
  stats(): ProgramCacheStats {
    let bytes = 0;
    for (const c of this.#entries.values()) bytes += c.bytes;
    return {
      hits: this.#hits,
      misses: this.#misses,
      sharedInFlight: this.#shared,
      entries: this.#entries.size,
      bytes,
      evictions: this.#evictions,
      loadTimeSavedMs: this.#saved,
    };
  }

  /** Whether a load of this key is running now (a new caller would join it). @internal */
  inFlight(hash: string): boolean {
    return this.#inflight.has(hash) && !this.#entries.has(hash);
  }

  /** Whether an object with this key is held now. */
  has(hash: string): boolean {
    return this.#entries.has(hash);
  }

  /**
   * Drops every held object. Objects still used by open handles stay loaded until those
   * handles close; the counters are kept (pass `resetStats` to zero them).
   */
  clear(options: { resetStats?: boolean } = {}): void {
    for (const core of this.#entries.values()) this.#drop(core);
    this.#entries.clear();
    if (options.resetStats) {
      this.#hits = this.#misses = this.#shared = this.#evictions = this.#saved = 0;
    }
  }

  /**
   * The object for `hash`: held, in flight, or loaded now through `load` (single-flight).
   * `hit` says whether the loader was skipped. The returned core is already acquired.
   * @internal
   */
  async get(hash: string, load: () => Promise<ObjectCore>): Promise<{ core: ObjectCore; hit: boolean }> {
    const held = this.#entries.get(hash);
    if (held && !held.closed) {
      this.#entries.delete(hash); // refresh LRU position
      this.#entries.set(hash, held);
      held.acquire();
      this.#hits++;
      this.#saved += held.loadTimeMs;
      return { core: held, hit: true };
    }
    const flying = this.#inflight.get(hash);
    if (flying) {
      const core = await flying;
      if (core.closed) return this.get(hash, load); // evicted and freed meanwhile: start over
      core.acquire();
      this.#hits++;
      this.#shared++;
      this.#saved += core.loadTimeMs;
      return { core, hit: true };
    }
    this.#misses++;
    let mine = false;
    const p = load().then(
      (core) => {
        this.#inflight.delete(hash);
        core.acquire(); // the caller's reference, taken before any eviction can run
        mine = true;
        core.cached = true;
        this.#entries.set(hash, core);
        this.#trim();
        return core;
      },
      (e: unknown) => {
        this.#inflight.delete(hash);
        throw e;
      },
    );
    this.#inflight.set(hash, p);
    const core = await p;
    if (!mine) core.acquire();
    return { core, hit: false };
  }

  /** Forgets one key (stale object), closing it when no handle uses it. @internal */
  forget(hash: string): void {
    const core = this.#entries.get(hash);
    if (!core) return;
    this.#entries.delete(hash);
    this.#drop(core);
  }

  #drop(core: ObjectCore): void {
    core.cached = false;
    if (core.refs === 0) core.destroy();
  }

  #trim(): void {
    let bytes = 0;
    for (const c of this.#entries.values()) bytes += c.bytes;
    for (const [hash, core] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && bytes <= this.#maxBytes) break;
      this.#entries.delete(hash);
      bytes -= core.bytes;
      this.#evictions++;
      this.#drop(core);
    }
  }
}

/** The process-wide program cache used by `loadObject`. */
export const programCache = new ProgramCache();

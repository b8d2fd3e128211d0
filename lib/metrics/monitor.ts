/**
 * `createMonitor`: opens several metric families at once. The eBPF objects of every family
 * load in parallel through one `loadObjects` call; each family then falls back along its
 * backends (eBPF, then procfs, ...) when one cannot open, unless a backend was forced.
 * @module
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { z } from 'zod';
import { ClosedError } from '../ebpf/errors.js';
import { loadObjects } from '../ebpf/load.js';
import type { BpfObject } from '../ebpf/object.js';
import { validate } from '../errors/validate.js';
import { bundledLoadOptions, bundledObjectPath } from './bpf-base.js';
import { resolveFilter } from './cgroup.js';
import {
  BACKENDS,
  FilterSchema,
  getFamily,
  listFamilies,
  type Backend,
  type FamilySnapshots,
  type Filter,
  type MetricReader,
  type ResolvedFilter,
  type SnapshotBase,
} from './family.js';
import { ConfigError } from '../errors/index.js';
import { MetricsError } from './errors.js';

/** Published when a family opens, falls back or fails: `{ family, backend, ok, error?, elapsedMs }`. */
export const monitorChannel = diagnostics_channel.channel('smoothtask:metrics:open');

/** Options of {@link createMonitor}. */
export const MonitorOptionsSchema = z
  .object({
    /** Families to open (default: every registered family). */
    families: z.array(z.string().min(1)).min(1).optional(),
    /** Which processes to watch (default: all). */
    filter: FilterSchema.optional(),
    /** `auto` (default): each family's backends in order until one opens; else only that backend. */
    backend: z.enum(['auto', ...BACKENDS] as [string, ...string[]]).default('auto'),
    /** Produce events (families with events keep their ring buffers off otherwise). */
    events: z.boolean().default(false),
    /** Reject when any family fails to open (default: record it in `failures`). */
    required: z.boolean().default(false),
    /** Load time limit per eBPF object, ms (default 30 000). */
    timeoutMs: z.number().positive().optional(),
    /** Abort opening. */
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();
/** Options of {@link createMonitor}. */
export type MonitorOptions = z.input<typeof MonitorOptionsSchema>;

/** Snapshots of every open family, read at once. */
export type MonitorSnapshot = { [K in keyof FamilySnapshots]?: FamilySnapshots[K] } & Record<string, SnapshotBase | undefined>;

/** An event of some family. */
export interface MonitorEvent {
  family: string;
  event: unknown;
}

/** Several open families. */
export class Monitor implements Disposable {
  /** Open readers by family. */
  readonly readers: ReadonlyMap<string, MetricReader>;
  /** Families that could not open, with the last error. */
  readonly failures: ReadonlyMap<string, Error>;
  #closed = false;
  #filter: ResolvedFilter;

  /** @internal */
  constructor(readers: Map<string, MetricReader>, failures: Map<string, Error>, filter: ResolvedFilter) {
    this.readers = readers;
    this.failures = failures;
    this.#filter = filter;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The resolved filter in force. */
  get filter(): ResolvedFilter {
    return this.#filter;
  }

  /** The reader of `family`, typed for built-in (and augmented) families. */
  get<K extends keyof FamilySnapshots & string>(family: K): MetricReader<FamilySnapshots[K] & SnapshotBase> | undefined {
    return this.readers.get(family) as MetricReader<FamilySnapshots[K] & SnapshotBase> | undefined;
  }

  /** Reads every family concurrently. A family whose read fails is left out (see `errors`). */
  async read(): Promise<{ snapshots: MonitorSnapshot; errors: Record<string, Error> }> {
    this.#check();
    const snapshots: Record<string, SnapshotBase> = {};
    const errors: Record<string, Error> = {};
    // One promise per family and no array of entries: this runs every second for the life of a service.
    const pending: Array<Promise<void>> = [];
    this.readers.forEach((r, name) => {
      const put = (s: SnapshotBase): void => {
        snapshots[name] = s;
      };
      const fail = (e: unknown): void => {
        errors[name] = e as Error;
      };
      try {
        // (Promise.resolve: a reader registered by user code may return its snapshot itself.)
        pending.push(Promise.resolve(r.read()).then(put, fail));
      } catch (e) {
        fail(e);
      }
    });
    await Promise.all(pending);
    return { snapshots: snapshots as MonitorSnapshot, errors };
  }

  /** Changes the filter of every reader at run time (eBPF readers: map updates, no reload). */
  async setFilter(filter: Filter): Promise<void> {
    this.#check();
    const f = resolveFilter(filter);
    for (const r of this.readers.values()) await r.setFilter?.(f);
    this.#filter = f;
  }

  /** Kernel and user memory of every reader, bytes. */
  memoryBytes(): number {
    let n = 0;
    for (const r of this.readers.values()) n += r.memoryBytes();
    return n;
  }

  /** Events of every family that has them, merged (opened with `events: true`). */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<MonitorEvent> {
    for await (const batch of this.eventBatches(options)) yield* batch;
  }

  /**
   * The same events in batches (one array per batch a family's reader delivered): one promise
   * per batch instead of one per event. Feed an `AlertEngine` with
   * `engine.addEventBatchSource('monitor', (signal) => monitor.eventBatches({ signal }))`.
   */
  async *eventBatches(options: { signal?: AbortSignal } = {}): AsyncGenerator<MonitorEvent[]> {
    this.#check();
    const queue: MonitorEvent[][] = [];
    let wake: (() => void) | undefined;
    let live = 0;
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    options.signal?.addEventListener('abort', stop, { once: true });
    for (const [family, r] of this.readers) {
      if (!r.events) continue;
      live++;
      void (async () => {
        try {
          if (r.eventBatches) {
            for await (const batch of r.eventBatches({ signal: ac.signal })) {
              const out = new Array<MonitorEvent>(batch.length);
              for (let i = 0; i < batch.length; i++) out[i] = { family, event: batch[i] };
              queue.push(out);
              wake?.();
            }
          } else {
            for await (const event of r.events!({ signal: ac.signal })) {
              queue.push([{ family, event }]);
              wake?.();
            }
          }
        } catch {
          /* reader closed or events not requested */
        } finally {
          live--;
          wake?.();
        }
      })();
    }
    // One abort listener for the whole iteration (one per wait would pile up on the signal).
    ac.signal.addEventListener('abort', () => wake?.(), { once: true });
    try {
      while (!ac.signal.aborted) {
        const b = queue.shift();
        if (b) {
          yield b;
          continue;
        }
        if (live === 0) return;
        await new Promise<void>((res) => {
          wake = res;
        });
        wake = undefined;
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      ac.abort();
    }
  }

  /** Closes every reader; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of this.readers.values()) r.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('monitor');
  }
}

/**
 * Opens the requested families. eBPF objects load in parallel (one `loadObjects` call); a
 * family whose eBPF backend cannot open (addon not built, no permission, unsupported kernel)
 * falls back to its next backend when `backend` is `auto`.
 *
 * @example
 * ```ts
 * using m = await createMonitor({ families: ['cpu', 'process'], filter: { containers: [id] } });
 * const { snapshots } = await m.read();
 * console.log(snapshots.cpu?.processes);
 * ```
 */
export async function createMonitor(options: MonitorOptions = {}): Promise<Monitor> {
  const o = validate(MonitorOptionsSchema, options, 'monitor options');
  const filter = resolveFilter(o.filter as Filter | undefined);
  const names = o.families ?? listFamilies();
  const failures = new Map<string, Error>();
  const plans: Array<{ name: string; backends: Backend[] }> = [];
  for (const name of names) {
    const def = getFamily(name);
    if (!def) {
      failures.set(name, new ConfigError(`unknown metric family '${name}'; registered: ${listFamilies().join(', ')}`, [`families: unknown '${name}'`]));
      continue;
    }
    const backends = o.backend === 'auto' ? [...def.backends] : def.backends.filter((b) => b === o.backend);
    if (!backends.length) {
      failures.set(name, new ConfigError(`family '${name}' has no '${o.backend}' backend (it has ${def.backends.join(', ')})`, [`backend: '${o.backend}' not offered by '${name}'`]));
      continue;
    }
    plans.push({ name, backends });
  }

  // One parallel load for every family that starts with eBPF.
  const objects = new Map<string, Promise<BpfObject>>();
  const toLoad = plans.filter((p) => p.backends[0] === 'ebpf' && getFamily(p.name)?.bpfObject);
  if (toLoad.length) {
    let settled: Promise<PromiseSettledResult<BpfObject>[]>;
    try {
      settled = loadObjects(
        toLoad.map((p) => {
          const def = getFamily(p.name)!;
          return {
            source: bundledObjectPath(def.bpfObject!),
            options: bundledLoadOptions({
              ...(def.programs ? { programs: [...def.programs] } : {}),
              ...(def.mapSizes ? { mapSizes: def.mapSizes() } : {}),
              ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
              ...(o.signal ? { signal: o.signal } : {}),
            }),
          };
        }),
      );
    } catch (e) {
      settled = Promise.reject(e);
    }
    toLoad.forEach((p, i) => {
      const pr = settled.then((all) => {
        const r = all[i]!;
        if (r.status === 'fulfilled') return r.value;
        throw r.reason;
      });
      pr.catch(() => {}); // observed below; avoid unhandled rejections for skipped families
      objects.set(p.name, pr);
    });
  }

  const readers = new Map<string, MetricReader>();
  await Promise.all(
    plans.map(async (p) => {
      const def = getFamily(p.name)!;
      for (const backend of p.backends) {
        const t0 = performance.now();
        const object = backend === 'ebpf' ? objects.get(p.name) : undefined;
        try {
          const reader = await def.factory({
            backend,
            filter,
            events: o.events,
            peer: (family: string) => readers.get(family),
            ...(object ? { object } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
          });
          readers.set(p.name, reader);
          failures.delete(p.name);
          monitorChannel.publish({ family: p.name, backend, ok: true, elapsedMs: performance.now() - t0 });
          return;
        } catch (e) {
          // The reader did not take the object: release it.
          if (object) object.then((ob) => ob.close(), () => {});
          failures.set(p.name, e as Error);
          monitorChannel.publish({ family: p.name, backend, ok: false, error: (e as Error).message, elapsedMs: performance.now() - t0 });
        }
      }
    }),
  );
  const monitor = new Monitor(readers, failures, filter);
  if (o.required && failures.size) {
    monitor.close();
    const [name, err] = [...failures][0]!;
    throw new MetricsError('ERR_METRICS_OPEN', `metric family '${name}' failed to open: ${err.message}`, { cause: err });
  }
  return monitor;
}

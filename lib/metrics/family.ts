/**
 * The reader contract of `smoothtask/metrics`: what every metric family (cpu, process,
 * network, disk, syscalls, gpu, thermal, power, ...) implements, the filter every family
 * accepts, and the registry `createMonitor` opens families from.
 *
 * A family plugs in with {@link registerFamily}; it never needs to touch the monitor.
 * @module
 */
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import type { CpuSnapshot, DiskSnapshot, NetworkSnapshot, ProcessSnapshot, SyscallsSnapshot } from './schemas.js';
import type { GpuSnapshot } from './gpu/schema.js';
import type { ThermalSnapshot } from './thermal/schema.js';
import type { PowerSnapshot } from './power/schema.js';

/** Where a reader's numbers come from. */
export type Backend = 'ebpf' | 'procfs' | 'sysfs' | 'nvml' | 'stub';

/** Every backend name, in no particular order. */
export const BACKENDS: readonly Backend[] = ['ebpf', 'procfs', 'sysfs', 'nvml', 'stub'];

/** Schema of the fields every snapshot carries. Family schemas extend it. */
export const SnapshotBaseSchema = z.object({
  /** Family name, e.g. `cpu`. */
  family: z.string(),
  /** Backend that produced the snapshot. */
  backend: z.enum(['ebpf', 'procfs', 'sysfs', 'nvml', 'stub']),
  /** Wall-clock time of the read, milliseconds since the epoch. */
  timestamp: z.number(),
});

/**
 * The fields every snapshot carries. Snapshots are read-only values: a record that did not
 * change since the reader's previous read (a `syscalls` pair, a `cpu` thread) may be the same
 * object in both snapshots, so a record changed in place would change in the other too.
 */
export type SnapshotBase = z.infer<typeof SnapshotBaseSchema>;

/**
 * One metric family's reader. `read()` returns a typed snapshot of what the family has
 * aggregated (cumulative counters unless the family documents otherwise); `events()` streams
 * discrete events where the family has them and the reader was opened with `events: true`.
 */
export interface MetricReader<S extends SnapshotBase = SnapshotBase, E = unknown> extends Disposable {
  /** Family name, e.g. `cpu`. */
  readonly family: string;
  /** Backend this reader uses. */
  readonly backend: Backend;
  /** True once closed. */
  readonly closed: boolean;
  /** Reads a snapshot. Rejects with `ClosedError` after close. */
  read(): Promise<S>;
  /** Events of the family (only when opened with `events: true`). Ends when the reader closes or `signal` aborts. */
  events?(options?: { signal?: AbortSignal }): AsyncIterable<E>;
  /**
   * The same events in batches, as the kernel side delivered them: one promise per batch, none
   * per event (what high-rate consumers such as alert rules should use). Optional: the monitor
   * wraps `events()` when a family has no batches.
   */
  eventBatches?(options?: { signal?: AbortSignal }): AsyncIterable<readonly E[]>;
  /** Replaces the filter at run time (eBPF readers update their filter maps: no reload). */
  setFilter?(filter: ResolvedFilter): void | Promise<void>;
  /** Kernel (map) and user memory this reader holds, in bytes. */
  memoryBytes(): number;
  /** Releases everything; idempotent. */
  close(): void;
}

// ---------------------------------------------------------------------------------- filter

const positiveInt = z.number().int().positive();
const cgroupId = z.union([z.bigint().positive(), z.number().int().positive()]);

/**
 * Which processes a family watches. Kinds combine with AND (a process must pass every kind
 * given); values inside a kind combine with OR. An empty filter watches everything.
 */
export const FilterSchema = z
  .object({
    /** Thread group ids (process ids) to watch. */
    tgids: z.array(positiveInt).max(1024).optional(),
    /** Cgroup v2 ids (the inode number of the cgroup directory). Descendant cgroups match too. */
    cgroupIds: z.array(cgroupId).max(256).optional(),
    /** Cgroup v2 paths, absolute (`/sys/fs/cgroup/...`) or relative to the cgroup2 mount. */
    cgroupPaths: z.array(z.string().min(1)).max(256).optional(),
    /** Docker container ids (full or an unambiguous prefix of at least 4 hex digits); resolved to cgroup ids. */
    containers: z.array(z.string().regex(/^[0-9a-f]{4,64}$/, 'a hex container id')).max(256).optional(),
    /** Command name prefix (`comm`, at most 15 bytes). */
    comm: z.string().min(1).max(15).optional(),
  })
  .strict();

/** A filter as users write it. */
export type Filter = z.input<typeof FilterSchema>;

/** A filter with containers and cgroup paths resolved to cgroup ids: what readers receive. */
export interface ResolvedFilter {
  /** Tgids to watch; empty = any. */
  readonly tgids: readonly number[];
  /** Cgroup v2 ids to watch (a process in a descendant matches too); empty = any. */
  readonly cgroupIds: readonly bigint[];
  /** Depth of each cgroup in `cgroupIds` (root = 0), same order: lets the kernel check ancestors cheaply. */
  readonly cgroupLevels: readonly number[];
  /** Path of each cgroup in `cgroupIds` relative to the cgroup2 mount (`/docker/<id>`), same order; '' when unknown. */
  readonly cgroupPaths?: readonly string[];
  /** Command name prefix, or undefined for any. */
  readonly comm?: string;
}

/** The filter that lets everything through. */
export const EMPTY_FILTER: ResolvedFilter = Object.freeze({ tgids: [], cgroupIds: [], cgroupLevels: [] });

/** True when `f` lets every process through. */
export function isEmptyFilter(f: ResolvedFilter): boolean {
  return f.tgids.length === 0 && f.cgroupIds.length === 0 && f.comm === undefined;
}

/** True when `a` and `b` let the same processes through (same tgids, cgroups and comm prefix). */
export function sameFilter(a: ResolvedFilter, b: ResolvedFilter): boolean {
  if (a === b) return true;
  const eq = <T>(x: readonly T[], y: readonly T[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.comm === b.comm && eq(a.tgids, b.tgids) && eq(a.cgroupIds, b.cgroupIds);
}

// ---------------------------------------------------------------------------------- registry

/** What a family factory receives from `createMonitor`. */
export interface FamilyContext {
  /** The backend to open (the monitor walks the family's backends in order until one opens). */
  readonly backend: Backend;
  /** The resolved filter. */
  readonly filter: ResolvedFilter;
  /** Whether a consumer wants events (families keep their ring buffers off otherwise). */
  readonly events: boolean;
  /**
   * For the `ebpf` backend of a family registered with `bpfObject`: its object, loaded in
   * parallel with the other families' objects by one `loadObjects` call. The value is the
   * loader's `BpfObject`; it belongs to the reader, which closes it.
   */
  readonly object?: Promise<unknown>;
  /** Aborts opening. */
  readonly signal?: AbortSignal;
  /**
   * The reader of another family of the same monitor, once it is open (`undefined` before,
   * or when that family is not part of the monitor): a family may read through it instead of
   * holding a second copy of the same kernel state (the `power` family takes per-process CPU
   * times from the `process` family's task iterator).
   */
  readonly peer?: (family: string) => MetricReader | undefined;
}

/** Opens a reader for one backend of a family. Throw to let the monitor try the next backend. */
export type FamilyFactory = (ctx: FamilyContext) => MetricReader | Promise<MetricReader>;

/** How a family is registered. */
export interface FamilyOptions {
  /** Backends this family can open, in order of preference (default `['ebpf']`). */
  backends?: readonly Backend[];
  /** File name of the bundled BPF object (in `bpfObjectDir()`) the `ebpf` backend needs, e.g. `sched.bpf.o`. */
  bpfObject?: string;
  /** Programs of that object to load (default all). */
  programs?: readonly string[];
  /**
   * `max_entries` of that object's maps for this host, asked when the object loads (for maps
   * bounded by what the host has, e.g. its CPUs: a batch read walks a hash map's whole bucket
   * array, so a small host should not carry a large host's bound).
   */
  mapSizes?: () => Record<string, number>;
  /** One-line description (docs, `--help` of examples). */
  description?: string;
}

/** A registered family. */
export interface FamilyDefinition extends Required<Pick<FamilyOptions, 'backends'>> {
  /** Family name. */
  readonly name: string;
  /** Opens one backend. */
  readonly factory: FamilyFactory;
  /** See {@link FamilyOptions.bpfObject}. */
  readonly bpfObject?: string;
  /** See {@link FamilyOptions.programs}. */
  readonly programs?: readonly string[];
  /** See {@link FamilyOptions.mapSizes}. */
  readonly mapSizes?: () => Record<string, number>;
  /** See {@link FamilyOptions.description}. */
  readonly description?: string;
}

/**
 * Snapshot type of each family, by name, so `monitor.read()` and `monitor.get()` are typed.
 * The built-in families are listed here, not added by declaration merging from their own
 * modules: an augmentation of a relative module (`'./family.js'`) does not survive bundling
 * into `dist/`, and users never saw it. A family of your own adds itself through the package
 * name, which does reach the bundled declarations:
 * ```ts
 * declare module 'smoothtask/metrics' { interface FamilySnapshots { mine: MySnapshot } }
 * ```
 */
export interface FamilySnapshots {
  /** CPU time per process, thread and cgroup; switches; run-queue latency. */
  cpu: CpuSnapshot;
  /** Processes (CPU, faults, switches, memory, lifetime). */
  process: ProcessSnapshot;
  /** TCP connections with addresses, ports, bytes and retransmits per process. */
  network: NetworkSnapshot;
  /** Block I/O per device (latency histogram) and per process. */
  disk: DiskSnapshot;
  /** System call counts, errors and latency per syscall per process. */
  syscalls: SyscallsSnapshot;
  /** CUDA driver API per process, GPU jobs, NVML devices. */
  gpu: GpuSnapshot;
  /** Thermal zones, hwmon sensors, CPU frequency and idle residency. */
  thermal: ThermalSnapshot;
  /** RAPL and hwmon power, per-process power estimate. */
  power: PowerSnapshot;
}

const registry = new Map<string, FamilyDefinition>();

/**
 * Registers (or replaces) a metric family. Built-in families register themselves when
 * `smoothtask/metrics` is imported.
 * @param name family name, lower-case (`cpu`, `gpu`, ...)
 * @param factory opens a reader for the backend in `ctx.backend`
 */
export function registerFamily(name: string, factory: FamilyFactory, options: FamilyOptions = {}): void {
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) throw new ConfigError(`invalid family name ${JSON.stringify(name)} (lower-case letters, digits, _ and -, starting with a letter)`, [`name: ${JSON.stringify(name)}`]);
  const def: FamilyDefinition = {
    name,
    factory,
    backends: options.backends && options.backends.length ? [...options.backends] : ['ebpf'],
    ...(options.bpfObject !== undefined ? { bpfObject: options.bpfObject } : {}),
    ...(options.programs !== undefined ? { programs: [...options.programs] } : {}),
    ...(options.mapSizes !== undefined ? { mapSizes: options.mapSizes } : {}),
    ...(options.description !== undefined ? { description: options.description } : {}),
  };
  registry.set(name, def);
}

/** The registered family called `name`, if any. */
export function getFamily(name: string): FamilyDefinition | undefined {
  return registry.get(name);
}

/** Names of every registered family, in registration order. */
export function listFamilies(): string[] {
  return [...registry.keys()];
}

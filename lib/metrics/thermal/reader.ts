/**
 * The `thermal` reader: sysfs thermal zones, cooling devices and hwmon sensors on every read,
 * plus (eBPF backend) CPU frequency and idle-state residency and temperature/trip events from
 * the thermal and power tracepoints (bpf/thermal.bpf.c).
 * @module
 */
import { join } from 'node:path';
import { z } from 'zod';
import { validate } from '../../errors/validate.js';
import { loadObject, numPossibleCpus, u32, type BpfMap, type BpfObject, type Link, type RingBufferLike } from '../../ebpf/index.js';
import '../../ebpf/attach.js'; // registers program.attach()
import { RingBuffer } from '../../ebpf/ringbuf.js';
import { bpfObjectDir } from '../../native/addon.js';
import { EMPTY_FILTER, type Backend, type ResolvedFilter } from '../family.js';
import { ReaderBase } from '../reader-base.js';
import { objectMapBytes } from '../gpu/bpf-filter.js';
import { cpuCurrent, cpuResidency, cpuStateKey, thermalConfig, thermalEvent, thermalProgStats, thermalZoneState } from '../gpu/structs.js';
import { readHwmon } from './hwmon.js';
import { SysfsLayoutCache } from './sysfs-util.js';
import type { ThermalEvent, ThermalSnapshot } from './schema.js';
import { readCoolingDevices, readThermalZones } from './zones.js';

/** The tracepoints the eBPF backend attaches: program name → tracepoint. */
export const THERMAL_TRACEPOINTS = {
  thermal_temperature: ['thermal', 'thermal_temperature'],
  thermal_zone_trip: ['thermal', 'thermal_zone_trip'],
  cpu_frequency: ['power', 'cpu_frequency'],
  cpu_idle: ['power', 'cpu_idle'],
} as const;

/**
 * `max_entries` of the residency maps for a host with `cpus` possible CPUs. Their keys are
 * (cpu, kHz) and (cpu, idle state): bounded by the CPUs times their states (cpuidle has at
 * most 10 states; cpufreq drivers report tens of frequencies, 256 per CPU leaves room for
 * drivers that report many). A batch read walks a hash map's whole bucket array, so a 2-CPU
 * host walks 512 + 64 buckets instead of the 8,192 + 8,192 of the object's bound (still the
 * cap for large hosts).
 */
export function thermalMapSizes(cpus: number = numPossibleCpus()): Record<string, number> {
  const size = (perCpu: number, floor: number): number => Math.min(8192, Math.max(floor, cpus * perCpu));
  return { freq_residency: size(256, 256), idle_residency: size(32, 64) };
}

const TRIP_TYPES = ['active', 'passive', 'hot', 'critical'];

/** Options of {@link openThermalReader}. */
export const ThermalReaderOptionsSchema = z
  .object({
    /** sysfs root (default `/sys`), for fixture trees. */
    sysfsRoot: z.string().min(1).optional(),
    /** `ebpf` (sysfs + tracepoints, default) or `sysfs` (no eBPF). */
    backend: z.enum(['ebpf', 'sysfs']).default('ebpf'),
    /** Read hwmon sensors too (default true). */
    hwmon: z.boolean().default(true),
    /** The compiled thermal.bpf.o (default `<bpfObjectDir()>/thermal.bpf.o`). */
    objectPath: z.string().min(1).optional(),
    timeoutMs: z.number().positive().default(30_000),
  })
  .strict();
/** Options of {@link openThermalReader}. */
export type ThermalReaderOptions = z.input<typeof ThermalReaderOptionsSchema>;

interface KernelMaps {
  prog: BpfMap<number, ReturnType<typeof thermalProgStats.decode>>;
  zones: BpfMap<number, ReturnType<typeof thermalZoneState.decode>>;
  freq: BpfMap<ReturnType<typeof cpuStateKey.decode>, ReturnType<typeof cpuResidency.decode>>;
  idle: BpfMap<ReturnType<typeof cpuStateKey.decode>, ReturnType<typeof cpuResidency.decode>>;
  current: BpfMap<number, ReturnType<typeof cpuCurrent.decode>>;
}

interface KernelCounts {
  zones: Array<[number, ReturnType<typeof thermalZoneState.decode>]>;
  freq: Array<[ReturnType<typeof cpuStateKey.decode>, ReturnType<typeof cpuResidency.decode>]>;
  idle: Array<[ReturnType<typeof cpuStateKey.decode>, ReturnType<typeof cpuResidency.decode>]>;
}

/** Each kernel map's last contents and the event count they were read at. */
type CountsCache = { [K in keyof KernelCounts]?: { generation: number; settled: boolean; value: KernelCounts[K] } };

/** Reader of the `thermal` family. */
export class ThermalReader extends ReaderBase<ThermalSnapshot, ThermalEvent> {
  /** Family name. */
  readonly family = 'thermal';
  /** `ebpf` or `sysfs`. */
  readonly backend: Backend;
  /** Tracepoints attached (program names). */
  readonly attached: readonly string[];
  readonly #obj: BpfObject | undefined;
  readonly #links: Link[];
  readonly #sysfsRoot: string | undefined;
  readonly #hwmon: boolean;
  readonly #lacks: string[];
  #eventConsumers = 0;
  readonly #rings = new Set<RingBufferLike<unknown>>();
  readonly #layout = new SysfsLayoutCache();
  readonly #maps: KernelMaps | undefined;

  /** @internal use {@link openThermalReader} */
  constructor(parts: { obj?: BpfObject; links: Link[]; attached: string[]; lacks: string[]; sysfsRoot?: string; hwmon: boolean }, filter: ResolvedFilter) {
    super(filter);
    this.#obj = parts.obj;
    this.backend = parts.obj ? 'ebpf' : 'sysfs';
    this.#links = parts.links;
    this.attached = parts.attached;
    this.#lacks = parts.lacks;
    this.#sysfsRoot = parts.sysfsRoot;
    this.#hwmon = parts.hwmon;
    // Opened once: a read is then one lookup or batch read per map, no fd churn.
    const o = parts.obj;
    if (!o) return;
    // One that fails to open closes those opened before it (the caller closes the object).
    const opened: Array<{ close(): void }> = [];
    const open = <T extends { close(): void }>(m: () => T): T => {
      const h = m();
      opened.push(h);
      return h;
    };
    try {
      this.#maps = {
        prog: open(() => o.map('thermal_prog', { key: u32, value: thermalProgStats })),
        zones: open(() => o.map('thermal_zones', { key: u32, value: thermalZoneState })),
        freq: open(() => o.map('freq_residency', { key: cpuStateKey, value: cpuResidency })),
        idle: open(() => o.map('idle_residency', { key: cpuStateKey, value: cpuResidency })),
        current: open(() => o.map('cpu_current', { key: u32, value: cpuCurrent })),
      };
    } catch (e) {
      for (const h of opened) h.close();
      throw e;
    }
  }

  /** The loaded object (eBPF backend). @internal */
  get object(): BpfObject | undefined {
    return this.#obj;
  }

  /** Kernel memory of the object's maps, bytes. */
  override memoryBytes(): number {
    return this.#obj && !this.#obj.closed ? objectMapBytes(this.#obj) : 0;
  }

  protected async collect(): Promise<ThermalSnapshot> {
    const opts = { layout: this.#layout, ...(this.#sysfsRoot ? { sysfsRoot: this.#sysfsRoot } : {}) };
    const [zones, cooling, hwmon] = await Promise.all([readThermalZones(opts), readCoolingDevices(opts), this.#hwmon ? readHwmon(opts) : Promise.resolve([])]);
    this.check();
    const kernel = this.#kernelState();
    const lacks = [...this.#lacks];
    if (!zones.length) lacks.push('no thermal zones in sysfs (/sys/class/thermal)');
    if (this.#hwmon && !hwmon.length) lacks.push('no hwmon sensors in sysfs (/sys/class/hwmon)');
    if (this.#obj) {
      if (kernel.tracepoints.cpuIdle === 0) lacks.push('power/cpu_idle has not fired (no cpuidle driver, or a hypervisor idle path)');
      if (kernel.tracepoints.cpuFrequency === 0) lacks.push('power/cpu_frequency has not fired (no cpufreq driver)');
    }
    return {
      family: 'thermal',
      backend: this.backend,
      timestamp: Date.now(),
      zones: zones.map((z) => {
        const k = kernel.zones.get(z.id);
        return { ...z, updates: k?.updates ?? 0, tripsCrossed: k?.trips ?? 0 };
      }),
      coolingDevices: cooling,
      hwmon,
      cpus: kernel.cpus,
      tracepoints: kernel.tracepoints,
      lacks,
    };
  }

  /** Each kernel map's last contents and the event count they were read at. */
  readonly #cached: CountsCache = {};

  /**
   * One kernel map, read again only when the program that writes it ran: its event counter
   * (`thermal_prog`) is bumped before the map is written, so a read right after an event may
   * miss that event's write, and the map is read once more at the next read after the counter
   * stops changing ("settled"); after that, while the counter stays the same, the last contents
   * are reused. Each map has its own counter: CPUs going idle (hundreds of times a second) do
   * not make the frequency and zone maps be read again.
   */
  #counts<K extends keyof KernelCounts>(key: K, generation: number | undefined, read: () => KernelCounts[K]): KernelCounts[K] {
    if (generation === undefined) return read();
    const last = this.#cached[key];
    if (last?.generation === generation && last.settled) return last.value;
    const value = read();
    this.#cached[key] = { generation, settled: last?.generation === generation, value } as CountsCache[K];
    return value;
  }

  #kernelState(): { zones: Map<number, { updates: number; trips: number }>; cpus: ThermalSnapshot['cpus']; tracepoints: ThermalSnapshot['tracepoints'] } {
    const empty = { temperature: 0, trip: 0, cpuFrequency: 0, cpuIdle: 0, eventsDropped: 0 };
    const maps = this.#maps;
    if (!maps) return { zones: new Map(), cpus: [], tracepoints: empty };
    const { prog, zones: zonesMap, freq, idle, current } = maps;
    const ps = prog.get(0);
    const counts: KernelCounts = {
      zones: this.#counts('zones', ps && ps.temp_events + ps.trip_events, () => [...zonesMap.readAll()]),
      freq: this.#counts('freq', ps?.freq_events, () => [...freq.readAll()]),
      idle: this.#counts('idle', ps?.idle_events, () => [...idle.readAll()]),
    };
    const zones = new Map<number, { updates: number; trips: number }>();
    for (const [id, z] of counts.zones) zones.set(id | 0, { updates: z.updates, trips: z.trips });
    const now = Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, as bpf_ktime_get_ns
    const cpus = new Map<number, ThermalSnapshot['cpus'][number]>();
    const cpu = (n: number) => {
      let c = cpus.get(n);
      if (!c) cpus.set(n, (c = { cpu: n, currentKhz: null, frequency: [], idle: [] }));
      return c;
    };
    for (const [k, r] of counts.freq) cpu(k.cpu).frequency.push({ state: k.state, seconds: r.ns / 1e9, entries: r.count });
    for (const [k, r] of counts.idle) cpu(k.cpu).idle.push({ state: k.state, seconds: r.ns / 1e9, entries: r.count });
    // Open intervals: the state each CPU is in now has run since *_since_ns.
    if (ps && (ps.freq_events > 0 || ps.idle_events > 0)) {
      // An array indexed by CPU: the possible CPUs' entries only, not all THERMAL_MAX_CPUS.
      for (const [n, c] of current.readAll('auto', Math.min(numPossibleCpus(), current.info.maxEntries))) {
        if (c.freq_since_ns) {
          const e = cpu(n);
          e.currentKhz = c.freq_khz;
          const r = e.frequency.find((x) => x.state === c.freq_khz) ?? (e.frequency.push({ state: c.freq_khz, seconds: 0, entries: 0 }), e.frequency[e.frequency.length - 1]!);
          r.seconds += Math.max(0, now - c.freq_since_ns) / 1e9;
        }
        if (c.idle_since_ns) {
          const e = cpu(n);
          const r = e.idle.find((x) => x.state === c.idle_state) ?? (e.idle.push({ state: c.idle_state, seconds: 0, entries: 0 }), e.idle[e.idle.length - 1]!);
          r.seconds += Math.max(0, now - c.idle_since_ns) / 1e9;
        }
      }
    }
    const list = [...cpus.values()].sort((a, b) => a.cpu - b.cpu);
    for (const c of list) {
      c.frequency.sort((a, b) => a.state - b.state);
      c.idle.sort((a, b) => a.state - b.state);
    }
    return {
      zones,
      cpus: list,
      tracepoints: ps
        ? { temperature: ps.temp_events, trip: ps.trip_events, cpuFrequency: ps.freq_events, cpuIdle: ps.idle_events, eventsDropped: ps.events_dropped }
        : empty,
    };
  }

  /**
   * Temperature changes and trips as they happen (eBPF backend). The kernel side sends records
   * only while at least one consumer iterates. Ends when the reader closes or `signal` aborts.
   */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<ThermalEvent, void, undefined> {
    this.check();
    if (!this.#obj) return;
    const ring = new RingBuffer(this.#obj.mapInfo('thermal_events'), { codec: thermalEvent, reuseBuffers: true });
    this.#rings.add(ring as RingBufferLike<unknown>);
    this.#setEmit(++this.#eventConsumers > 0);
    const onAbort = () => ring.close();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const e of ring) {
        yield {
          type: e.kind === 2 ? 'trip' : 'temperature',
          monotonicNs: e.ts_ns,
          zoneId: e.zone_id,
          zone: e.zone,
          temperatureC: e.temp / 1000,
          previousC: e.temp_prev / 1000,
          trip: e.kind === 2 ? e.trip : -1,
          tripType: e.kind === 2 ? (TRIP_TYPES[e.trip_type] ?? String(e.trip_type)) : '',
        };
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      ring.close();
      this.#rings.delete(ring as RingBufferLike<unknown>);
      if (!this.closed) this.#setEmit(--this.#eventConsumers > 0);
    }
  }

  #setEmit(on: boolean): void {
    if (!this.#obj || this.#obj.closed) return;
    const m = this.#obj.map('thermal_config', { key: u32, value: thermalConfig });
    try {
      m.set(0, { emit_events: on ? 1 : 0, pad: 0 });
    } finally {
      m.close();
    }
  }

  protected override onClose(): void {
    for (const r of this.#rings) r.close();
    for (const l of this.#links) l.close();
    if (this.#maps) for (const m of Object.values(this.#maps)) m.close();
    this.#obj?.close();
  }
}

/**
 * Opens the thermal reader. With the eBPF backend, tracepoints the kernel lacks are listed in
 * `snapshot.lacks` rather than failing the open; only a failure to load the object rejects.
 */
export async function openThermalReader(options: ThermalReaderOptions = {}, context: { filter?: ResolvedFilter; object?: Promise<unknown> } = {}): Promise<ThermalReader> {
  const o = validate(ThermalReaderOptionsSchema, options, 'thermal reader options');
  const filter = context.filter ?? EMPTY_FILTER;
  const base = { sysfsRoot: o.sysfsRoot, hwmon: o.hwmon };
  if (o.backend === 'sysfs' && !context.object) return new ThermalReader({ links: [], attached: [], lacks: [], ...base }, filter);
  const obj = context.object
    ? ((await context.object) as BpfObject)
    : await loadObject(o.objectPath ?? join(bpfObjectDir(), 'thermal.bpf.o'), { cache: false, timeoutMs: o.timeoutMs, ...(o.objectPath ? {} : { mapSizes: thermalMapSizes() }) });
  const links: Link[] = [];
  const attached: string[] = [];
  const lacks: string[] = [];
  try {
    for (const [prog, [category, name]] of Object.entries(THERMAL_TRACEPOINTS)) {
      try {
        links.push(obj.program(prog).attach({ type: 'tracepoint', category, name }));
        attached.push(prog);
      } catch (e) {
        lacks.push(`tracepoint ${category}/${name}: ${(e as Error).message}`);
      }
    }
    return new ThermalReader({ obj, links, attached, lacks, ...base }, filter);
  } catch (e) {
    for (const l of links) l.close();
    obj.close();
    throw e;
  }
}

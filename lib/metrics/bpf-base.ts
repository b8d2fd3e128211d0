/**
 * Shared machinery of the eBPF readers: loading a bundled object, attaching its programs,
 * writing the in-kernel filter maps of bpf/filter.bpf.h, and accounting map memory.
 * @module
 */
import { join } from 'node:path';
import { u32, u64, u8 } from '../ebpf/codec.js';
import { readFdinfo, type BpfMap } from '../ebpf/map.js';
import { loadObject, type LoadOptions } from '../ebpf/load.js';
import type { BpfObject } from '../ebpf/object.js';
import type { IterLink, Link } from '../ebpf/types.js';
import { bpfObjectDir } from '../native/addon.js';
import type { MetricReader, ResolvedFilter, SnapshotBase } from './family.js';
import { FILTER_FLAGS, stFilterConfig } from './bpf-structs.js';
import { ReaderBase } from './reader-base.js';

/** Path of a bundled object in `bpfObjectDir()`. */
export function bundledObjectPath(file: string): string {
  return join(bpfObjectDir(), file);
}

/**
 * Load options every bundled object uses: no program cache (each reader owns its maps and
 * filter; a shared cached object would double-count once attached twice).
 */
export function bundledLoadOptions(extra: LoadOptions = {}): LoadOptions {
  return { cache: false, timeoutMs: 30_000, ...extra };
}

/** Loads a bundled object on its own (createMonitor loads them in parallel instead). */
export function loadBundled(file: string, extra: LoadOptions = {}): Promise<BpfObject> {
  return loadObject(bundledObjectPath(file), bundledLoadOptions(extra));
}

/** Typed handles on the three filter maps of bpf/filter.bpf.h. */
export class FilterMaps {
  readonly cfg: BpfMap<number, ReturnType<typeof stFilterConfig.decode>>;
  readonly tgids: BpfMap<number, number>;
  readonly cgroups: BpfMap<bigint, number>;

  /** Opens the filter maps of `obj`. */
  constructor(obj: BpfObject) {
    this.cfg = obj.map('st_filter_cfg', { key: u32, value: stFilterConfig });
    this.tgids = obj.map('st_filter_tgids', { key: u32, value: u8 });
    this.cgroups = obj.map('st_filter_cgroups', { key: u64, value: u8 });
  }

  /**
   * Writes `f` (and the events flag). New set members go in before the config switches a kind
   * on, stale ones leave after, so a running program never sees a half-written filter.
   */
  write(f: ResolvedFilter, events: boolean): void {
    const wantT = new Set(f.tgids);
    const wantC = new Set(f.cgroupIds);
    for (const t of wantT) this.tgids.set(t, 1);
    for (const c of wantC) this.cgroups.set(c, 1);
    let flags = events ? FILTER_FLAGS.events : 0;
    if (wantT.size) flags |= FILTER_FLAGS.tgid;
    if (wantC.size) flags |= FILTER_FLAGS.cgroup;
    const comm = f.comm ?? '';
    if (comm) flags |= FILTER_FLAGS.comm;
    const levels = f.cgroupLevels.filter((l) => l >= 0);
    this.cfg.set(0, {
      flags,
      comm_len: Math.min(Buffer.byteLength(comm), 15),
      // Unknown levels (ids given without a path) make the kernel check every level.
      cg_level_min: levels.length === f.cgroupLevels.length && levels.length ? Math.min(...levels) : 0,
      cg_level_max: levels.length === f.cgroupLevels.length && levels.length ? Math.max(...levels) : 15,
      comm,
    });
    for (const t of [...this.tgids.keys()]) if (!wantT.has(t)) this.tgids.delete(t);
    for (const c of [...this.cgroups.keys()]) if (!wantC.has(c)) this.cgroups.delete(c);
  }

  /** Closes the three map handles. */
  close(): void {
    this.cfg.close();
    this.tgids.close();
    this.cgroups.close();
  }
}

/** Options of {@link BpfReaderBase}. */
export interface BpfReaderOptions {
  /** The loaded object; the reader owns (and closes) it. */
  object: BpfObject;
  filter: ResolvedFilter;
  /** Turn the events flag on (ring buffer records produced). */
  events: boolean;
  /** Programs not to attach (e.g. iterators are attached per read). */
  skipAttach?: (section: string) => boolean;
  /** Another family's reader in the same monitor (see FamilyContext.peer). */
  peer?: (family: string) => MetricReader | undefined;
}

/** Base of the eBPF readers: attaches on construction, filter maps, memory, cleanup. */
export abstract class BpfReaderBase<S extends SnapshotBase, E = never> extends ReaderBase<S, E> {
  readonly backend = 'ebpf' as const;
  /** The loaded object. */
  protected readonly obj: BpfObject;
  /** Links of the attached programs. */
  protected readonly links: Link[] = [];
  /** Typed maps the reader opened (closed with it). */
  protected readonly openMaps: Array<BpfMap<never, never>> = [];
  /** Filter maps. */
  protected readonly filterMaps: FilterMaps;
  /** Whether events were asked for. */
  protected readonly wantEvents: boolean;
  /** Other families' readers of the same monitor, when opened through one. */
  protected readonly peer: ((family: string) => MetricReader | undefined) | undefined;

  /** Writes the filter, then attaches every loaded program (iterators excepted); owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o.filter);
    this.obj = o.object;
    this.wantEvents = o.events;
    this.peer = o.peer;
    try {
      this.filterMaps = new FilterMaps(o.object);
      // Filter first: programs must never run unfiltered once attached. The events flag goes
      // on only while someone iterates events() (see eventsActive).
      this.filterMaps.write(o.filter, false);
      const skip = o.skipAttach ?? ((s: string) => s.startsWith('iter'));
      for (const p of o.object.programs.values()) if (p.loaded && !skip(p.section)) this.links.push(p.attach());
    } catch (e) {
      for (const l of this.links) l.close();
      o.object.close();
      throw e;
    }
  }

  #consumers = 0;

  /**
   * Counts an events() consumer in (+1) or out (-1): the programs produce ring buffer records
   * only while at least one consumer iterates.
   */
  protected eventsActive(delta: 1 | -1): void {
    if (this.closed) return;
    const before = this.#consumers;
    this.#consumers = Math.max(0, before + delta);
    if ((before === 0) !== (this.#consumers === 0)) this.filterMaps.write(this.filter, this.#consumers > 0);
  }

  /** Opens a typed map that closes with the reader. */
  protected map<K, V>(name: string, codecs: { key: import('../ebpf/types.js').Codec<K>; value: import('../ebpf/types.js').Codec<V> }): BpfMap<K, V> {
    const m = this.obj.map(name, codecs);
    this.openMaps.push(m as unknown as BpfMap<never, never>);
    return m;
  }

  /** Attaches iterator program `name` (a fresh link per call is not needed: one link, read many times). */
  protected iterator(name: string): IterLink {
    const l = this.obj.program(name).attach({ type: 'iterator' }) as IterLink;
    this.links.push(l);
    return l;
  }

  override setFilter(filter: ResolvedFilter): void | Promise<void> {
    this.check();
    this.filterMaps.write(filter, this.#consumers > 0);
    this.filter = filter;
  }

  /** Kernel memory of the object's maps (fdinfo memlock), bytes. */
  override memoryBytes(): number {
    if (this.closed) return 0;
    let total = 0;
    for (const m of this.obj.maps.values()) {
      try {
        total += Number(readFdinfo(m.fd).memlock ?? 0);
      } catch {
        /* closed meanwhile */
      }
    }
    return total;
  }

  /**
   * Kernel run-time statistics of each loaded program (run_time_ns, run_cnt; zero unless
   * bpf_stats is enabled, see `enableBpfStats` of smoothtask/ebpf).
   */
  programStats(): Record<string, { runTimeNs: number; runCount: number }> {
    this.check();
    const r: Record<string, { runTimeNs: number; runCount: number }> = {};
    for (const p of this.obj.programs.values()) if (p.loaded) r[p.name] = p.stats();
    return r;
  }

  /**
   * Events the programs could not put in the ring buffer because it was full (JS fell behind),
   * from the object's `st_drops` counter; 0 for objects without events.
   */
  droppedEvents(): number {
    this.check();
    if (!this.obj.maps.has('st_drops')) return 0;
    const m = this.obj.map('st_drops', { key: u32, value: u64 });
    try {
      return Number(m.get(0) ?? 0n);
    } finally {
      m.close();
    }
  }

  /** Memory of each map, by name (bytes). */
  mapMemory(): Record<string, number> {
    const r: Record<string, number> = {};
    for (const m of this.obj.maps.values()) r[m.name] = Number(readFdinfo(m.fd).memlock ?? 0);
    return r;
  }

  protected override onClose(): void {
    for (const l of this.links.splice(0)) l.close();
    for (const m of this.openMaps.splice(0)) m.close();
    this.filterMaps.close();
    this.obj.close();
  }
}

/** CLOCK_MONOTONIC now, ns (the clock of bpf_ktime_get_ns and task start times). */
export function monotonicNowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Converts a CLOCK_MONOTONIC ns timestamp to epoch milliseconds. */
export function monoToEpochMs(ns: number): number {
  return Date.now() - (monotonicNowNs() - ns) / 1e6;
}

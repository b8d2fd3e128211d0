/**
 * {@link BpfObject} and {@link BpfProgram}: handles on a loaded eBPF object. Several handles
 * may share one loaded object (cache hits, single-flight loads); each handle holds one
 * reference and the kernel resources go when the last reference is released.
 * @module
 */
import { ConfigError } from '../errors/index.js';
import { loadAddon } from '../native/addon.js';
import type { NativeObjectHandle } from '../native/binding-loader.js';
import { ClosedError, fromNative } from './errors.js';
import { attachProgram } from './attach.js';
import { BpfMap } from './map.js';
import { PerfBuffer, type PerfBufferExtraOptions } from './perfbuf.js';
import { RingBuffer, type RingBufferExtraOptions } from './ringbuf.js';
import type { AttachOptions, Codec, Link, MapInfo, ProgramInfo, RingBufferOptions } from './types.js';

/**
 * One loaded object shared by its handles: the native object plus a reference count.
 * The cache keeps cores alive between handles; an uncached core closes with its last handle.
 * @internal
 */
export class ObjectCore {
  refs = 0;
  /** Held by the program cache (closed by the cache on eviction when no handle is left). */
  cached = false;
  #closed = false;
  readonly programs: ProgramInfo[];
  readonly maps: MapInfo[];
  /** `[name, frozen info]` of each map, made once: a handle copies the pairs, not the infos. */
  readonly mapEntries: [string, MapInfo][];
  #bytes: number | undefined;

  constructor(
    readonly native: NativeObjectHandle,
    readonly hash: string,
    readonly name: string,
    readonly loadTimeMs: number,
    readonly fromPins: boolean,
    readonly btfSource: () => Uint8Array | undefined,
  ) {
    this.programs = native.programs();
    this.maps = native.maps();
    this.mapEntries = this.maps.map((m) => [m.name, Object.freeze({ ...m })]);
  }

  /** Kernel memory of the programs and maps (fdinfo memlock), read once on first use. */
  get bytes(): number {
    if (this.#bytes === undefined) this.#bytes = this.#closed ? 0 : this.native.meta().memlockBytes;
    return this.#bytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  acquire(): void {
    if (this.#closed) throw new ClosedError(`object '${this.name}'`);
    this.refs++;
  }

  release(): void {
    if (this.refs > 0) this.refs--;
    if (this.refs === 0 && !this.cached) this.destroy();
  }

  /** Frees the kernel resources now. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.native.close();
  }
}

interface Lease {
  core: ObjectCore;
  released: boolean;
}

// Safety net: a handle dropped without close() still releases its reference.
const registry = new FinalizationRegistry<Lease>((lease) => {
  if (!lease.released) {
    lease.released = true;
    lease.core.release();
  }
});

/** Run-time statistics of one program (need bpf_stats on: see {@link enableBpfStats}). */
export interface ProgramStats {
  /** Total time the program ran, in nanoseconds. */
  runTimeNs: number;
  /** How many times it ran. */
  runCount: number;
}

/** A program of a loaded object. */
export class BpfProgram implements ProgramInfo {
  readonly name: string;
  readonly section: string;
  readonly type: string;
  readonly attachType: string;
  readonly loaded: boolean;
  readonly fd: number;
  readonly id: number;
  readonly tag: string;
  readonly #owner: BpfObject;

  /** @internal */
  constructor(info: ProgramInfo, owner: BpfObject) {
    this.name = info.name;
    this.section = info.section;
    this.type = info.type;
    this.attachType = info.attachType;
    this.loaded = info.loaded;
    this.fd = info.fd;
    this.id = info.id;
    this.tag = info.tag;
    this.#owner = owner;
  }

  /** This program's info as plain data (what the data path's attach functions take). */
  get info(): ProgramInfo {
    return {
      name: this.name,
      section: this.section,
      type: this.type,
      attachType: this.attachType,
      loaded: this.loaded,
      fd: this.fd,
      id: this.id,
      tag: this.tag,
    };
  }

  /**
   * Attaches the program (`auto`: as its section name says). The link owns its own
   * duplicate of the program fd, so it outlives the object's `close()`.
   */
  attach(opts?: AttachOptions): Link {
    this.#check();
    if (!this.loaded) throw new ClosedError(`program '${this.name}' was not loaded (left out through \`programs\`), it`);
    return attachProgram(this.info, opts);
  }

  /** Run time and run count from the kernel (`bpf_prog_info`; zero unless bpf_stats is on). */
  stats(): ProgramStats {
    this.#check();
    if (!this.loaded) return { runTimeNs: 0, runCount: 0 };
    try {
      const s = loadAddon().loader.progStats(this.fd);
      return { runTimeNs: s.runTimeNs, runCount: s.runCount };
    } catch (e) {
      throw fromNative(e, new Error());
    }
  }

  #check(): void {
    if (this.#owner.closed) throw new ClosedError(`object '${this.#owner.name}'`);
  }
}


/**
 * A loaded eBPF object: its programs and maps by name.
 *
 * Closing a handle releases its reference; maps, ring buffers and links made from it own
 * duplicated fds and stay valid. A cached object stays loaded (for the next cache hit)
 * until the cache evicts it or {@link programCache}.clear() runs.
 *
 * @example
 * ```ts
 * using obj = await loadObject('counter.bpf.o');
 * obj.attach();
 * const counts = obj.map('counts', { key: u32, value: u64 });
 * ```
 */
export class BpfObject implements Disposable {
  /** Object name (file name without `.bpf.o`, or `options.name`). */
  readonly name: string;
  /** Cache key: sha256 of the ELF bytes and the normalised load options. */
  readonly hash: string;
  /** True when this handle came from the program cache without a load. */
  readonly fromCache: boolean;
  /** True when the programs and maps were reopened from bpffs pins (no verifier). */
  readonly fromPins: boolean;
  /** How long the load took (open + verifier), or the pin reopen, in milliseconds. */
  readonly loadTimeMs: number;
  /** Programs by name (left-out programs are present with `loaded: false`). */
  readonly programs: ReadonlyMap<string, BpfProgram>;
  /** Maps by name (internal maps are `.rodata`, `.bss`, `.data`). */
  readonly maps: ReadonlyMap<string, MapInfo>;
  readonly #lease: Lease;

  /** @internal `core` must already be acquired for this handle. */
  constructor(core: ObjectCore, fromCache: boolean) {
    this.#lease = { core, released: false };
    registry.register(this, this.#lease, this);
    this.name = core.name;
    this.hash = core.hash;
    this.fromCache = fromCache;
    this.fromPins = core.fromPins;
    this.loadTimeMs = core.loadTimeMs;
    this.programs = new Map(core.programs.map((p) => [p.name, new BpfProgram(p, this)]));
    this.maps = new Map(core.mapEntries);
  }

  /** True once this handle is closed. */
  get closed(): boolean {
    return this.#lease.released || this.#lease.core.closed;
  }

  /**
   * The verifier's log for one program, as captured during the load: present when the object
   * was loaded with `logLevel` ≥ 1 (empty otherwise, and for objects reopened from pins).
   */
  verifierLog(program: string): string {
    this.program(program);
    const log = this.#lease.core.native.meta().log;
    const begin = `prog '${program}': -- BEGIN PROG LOAD LOG --\n`;
    const at = log.indexOf(begin);
    if (at < 0) return '';
    const end = log.indexOf('-- END PROG LOAD LOG --', at);
    return log.slice(at + begin.length, end < 0 ? undefined : end);
  }

  /** Kernel memory used by the object's programs and maps (fdinfo memlock), in bytes. */
  get memoryBytes(): number {
    return this.#lease.core.bytes;
  }

  /** The program called `name`; throws a RangeError naming the available ones. */
  program(name: string): BpfProgram {
    this.#check();
    const p = this.programs.get(name);
    if (!p) throw new ConfigError(`object '${this.name}' has no program '${name}'; it has: ${[...this.programs.keys()].join(', ')}`);
    return p;
  }

  /** The info of map `name` (fd owned by the object); throws a RangeError naming the available ones. */
  mapInfo(name: string): MapInfo {
    this.#check();
    const m = this.maps.get(name);
    if (!m) throw new ConfigError(`object '${this.name}' has no map '${name}'; it has: ${[...this.maps.keys()].join(', ')}`);
    return m;
  }

  /** A typed handle on map `name`. It owns a duplicate fd: close it yourself. */
  map<K = Buffer, V = Buffer>(name: string, codecs?: { key?: Codec<K>; value?: Codec<V> }): BpfMap<K, V> {
    return new BpfMap<K, V>(this.mapInfo(name), codecs);
  }

  /**
   * A consumer of ring buffer map `mapName` (its own thread, batches, backpressure): a
   * {@link PerfBuffer} when the map is a perf_event_array. It owns a duplicate fd: close it yourself.
   */
  ringBuffer<T = Buffer>(mapName: string, opts?: RingBufferOptions<T> & RingBufferExtraOptions & PerfBufferExtraOptions): RingBuffer<T> {
    const info = this.mapInfo(mapName);
    return info.type === 'perf_event_array' ? new PerfBuffer<T>(info, opts) : new RingBuffer<T>(info, opts);
  }

  /** Attaches every loaded program as its section says; returns the links (close them to detach). */
  attach(): Link[] {
    this.#check();
    const links: Link[] = [];
    try {
      for (const p of this.programs.values()) if (p.loaded) links.push(p.attach());
    } catch (e) {
      for (const l of links) l.close();
      throw e;
    }
    return links;
  }

  /** The object's raw BTF (for run-time BTF decoders), or undefined when it has none. */
  btf(): Uint8Array | undefined {
    this.#check();
    return this.#lease.core.btfSource();
  }

  /** Releases this handle's reference; idempotent. */
  close(): void {
    if (this.#lease.released) return;
    this.#lease.released = true;
    registry.unregister(this);
    this.#lease.core.release();
  }

  /** Same as {@link BpfObject.close} (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.closed) throw new ClosedError(`object '${this.name}'`);
  }
}

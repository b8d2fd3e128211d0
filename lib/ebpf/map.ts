/**
 * Typed BPF maps: {@link BpfMap} over a loaded object's map (or one made with {@link createMap}
 * or opened from a pin with {@link openPinnedMap}).
 * @module
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { loadAddon } from '../native/addon.js';
import type { DatapathNative } from '../native/binding-datapath.js';
import { rawCodec, sumPerCpu, sumRawPerCpu } from './codec.js';
import { ClosedError, fromNative } from './errors.js';
import type { BpfMapLike, Codec, MapInfo, UpdateFlag } from './types.js';

/** @internal */
export function dp(): DatapathNative {
  return loadAddon().dp;
}

/** Calls into the addon, turning native errors into typed ones. @internal */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e, new Error());
  }
}

const PER_CPU_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const FLAG_VALUES: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

let possibleCpus: number | undefined;
/** Number of possible CPUs (the length of per-CPU values), as libbpf counts them. */
export function numPossibleCpus(): number {
  possibleCpus ??= call(() => dp().numPossibleCpus());
  return possibleCpus;
}

/** Map metadata: what the kernel reports plus fdinfo's memory figure. */
export interface MapMetadata {
  name: string;
  type: string;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Kernel memory charged to the map (fdinfo `memlock`), bytes. */
  memoryBytes: number;
  /** Per-CPU map: values are kept per possible CPU. */
  perCpu: boolean;
  /** Possible CPUs (per-CPU value count), 1 for other maps. */
  cpus: number;
}

/** Raw result of {@link BpfMap.readAllRaw}: keys and values back to back. */
export interface RawMapContents {
  keys: Buffer;
  /** Values; per-CPU maps: `cpus` values of `stride` bytes each per entry. */
  values: Buffer;
  count: number;
  keySize: number;
  /** Bytes from one entry's value to the next. */
  entryStride: number;
  /** True when BPF_MAP_LOOKUP_BATCH served the read. */
  batch: boolean;
}

/** Parses /proc/self/fdinfo/<fd> into its key: value lines. @internal */
export function readFdinfo(fd: number): Record<string, string> {
  const r: Record<string, string> = {};
  for (const line of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) r[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return r;
}

const registry = new FinalizationRegistry<number>((fd) => {
  try {
    dp().closeFd(fd);
  } catch {
    /* addon gone at teardown: the fd dies with the process */
  }
});

/**
 * A typed view of one BPF map. It owns a duplicate of the map fd, so it stays usable after the
 * object that created the map is closed (the kernel map lives while any fd refers to it).
 *
 * Keys and values decode through `codecs` (generated from BTF, {@link codecFromBtf}, or the
 * combinators of codec.ts); without a codec they are raw `Buffer`s.
 *
 * @example
 * ```ts
 * const counts = new BpfMap(obj.mapInfo('counts'), { key: u32, value: u64 });
 * for (const [tgid, n] of counts.readAll()) console.log(tgid, n);
 * ```
 */
export class BpfMap<K = Buffer, V = Buffer> implements BpfMapLike<K, V> {
  /** The map's info as given (fd is the object's, not this map's). */
  readonly info: MapInfo;
  readonly perCpu: boolean;
  /** Possible CPUs for per-CPU maps, else 1. */
  readonly cpus: number;
  /** Bytes between per-CPU copies of one value (value size rounded up to 8). */
  readonly stride: number;
  readonly #key: Codec<K>;
  readonly #value: Codec<V>;
  #fd: number;
  readonly #kbuf: Buffer;
  readonly #kbuf2: Buffer;
  readonly #vbuf: Buffer;
  #lastBatch = false;

  /**
   * Wraps the map described by `info` (its fd is duplicated; the caller keeps its own).
   * Codec sizes must equal the key and value sizes.
   */
  constructor(info: MapInfo, codecs: { key?: Codec<K>; value?: Codec<V> } = {}) {
    this.info = { ...info };
    this.perCpu = PER_CPU_TYPES.has(info.type);
    this.cpus = this.perCpu ? numPossibleCpus() : 1;
    this.stride = this.perCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
    this.#key = codecs.key ?? (rawCodec(info.keySize) as unknown as Codec<K>);
    this.#value = codecs.value ?? (rawCodec(info.valueSize) as unknown as Codec<V>);
    if (this.#key.size !== info.keySize) throw new ConfigError(`map ${info.name}: key codec size ${this.#key.size} != key size ${info.keySize}`);
    if (this.#value.size !== info.valueSize)
      throw new ConfigError(`map ${info.name}: value codec size ${this.#value.size} != value size ${info.valueSize}`);
    this.#kbuf = Buffer.alloc(Math.max(info.keySize, 1));
    this.#kbuf2 = Buffer.alloc(Math.max(info.keySize, 1));
    this.#vbuf = Buffer.alloc(Math.max(this.stride * this.cpus, 1));
    this.#fd = call(() => dp().dupFd(info.fd));
    registry.register(this, this.#fd, this);
  }

  /** Map name. */
  get name(): string {
    return this.info.name;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** This map's own fd (a duplicate); valid until close(). */
  get fd(): number {
    return this.#live();
  }

  /** True when the last readAll/entries was served by BPF_MAP_LOOKUP_BATCH. */
  get lastReadUsedBatch(): boolean {
    return this.#lastBatch;
  }

  #live(): number {
    if (this.#fd < 0) throw new ClosedError(`map ${this.info.name}`);
    return this.#fd;
  }

  #encodeKey(key: K, buf = this.#kbuf): Buffer {
    this.#key.encode(key, buf, 0);
    return buf;
  }

  #decodeValue(data: Uint8Array, offset: number): V {
    if (!this.perCpu) return this.#value.decode(data, offset);
    if (this.#value.size === this.info.valueSize && this.#isRaw())
      return sumRawPerCpu(data, offset, this.info.valueSize, this.stride, this.cpus) as unknown as V;
    const per: V[] = [];
    for (let c = 0; c < this.cpus; c++) per.push(this.#value.decode(data, offset + c * this.stride));
    return sumPerCpu(per) as V;
  }

  #rawValue: boolean | undefined;
  #isRaw(): boolean {
    // Raw Buffer values sum in integer lanes; decoded values sum field by field.
    this.#rawValue ??= this.#value.decode(Buffer.alloc(this.info.valueSize), 0) instanceof Uint8Array;
    return this.#rawValue;
  }

  /** Value for `key` (per-CPU maps: summed over CPUs), or undefined. */
  get(key: K): V | undefined {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    if (!call(() => dp().mapLookup(fd, k, this.#vbuf, 0))) return undefined;
    return this.#decodeValue(this.#vbuf, 0);
  }

  /**
   * The raw value bytes for `key` (per-CPU maps: every possible CPU's value, `stride` bytes
   * apart), or undefined. The bytes are this map's own lookup buffer, overwritten by its next
   * lookup: decode them before that (nothing is allocated per call, for readers polling a map).
   */
  getRaw(key: K): Buffer | undefined {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    return call(() => dp().mapLookup(fd, k, this.#vbuf, 0)) ? this.#vbuf : undefined;
  }

  /** Per-CPU maps: one value per possible CPU; other maps: a one-element array. */
  getPerCpu(key: K): V[] | undefined {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    if (!call(() => dp().mapLookup(fd, k, this.#vbuf, 0))) return undefined;
    const r: V[] = [];
    for (let c = 0; c < this.cpus; c++) r.push(this.#value.decode(this.#vbuf, c * this.stride));
    return r;
  }

  /**
   * Sets `key` to `value`. `flag`: 'any' (default), 'noexist' (fail if present), 'exist' (fail
   * if absent). Per-CPU maps: CPU 0 gets `value`, the other CPUs zero, so a summed get returns it.
   */
  set(key: K, value: V, flag: UpdateFlag = 'any'): void {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    this.#vbuf.fill(0);
    this.#value.encode(value, this.#vbuf, 0);
    call(() => dp().mapUpdate(fd, k, this.#vbuf, FLAG_VALUES[flag]));
  }

  /** Per-CPU maps: sets one value per possible CPU (`values.length` must equal {@link cpus}). */
  setPerCpu(key: K, values: readonly V[], flag: UpdateFlag = 'any'): void {
    const fd = this.#live();
    if (values.length !== this.cpus) throw new ConfigError(`expected ${this.cpus} per-CPU values, got ${values.length}`);
    const k = this.#encodeKey(key);
    this.#vbuf.fill(0);
    values.forEach((v, c) => this.#value.encode(v, this.#vbuf, c * this.stride));
    call(() => dp().mapUpdate(fd, k, this.#vbuf, FLAG_VALUES[flag]));
  }

  /** Writes many entries in one native call (BPF_MAP_UPDATE_BATCH, per-key fallback). */
  setMany(entries: Iterable<readonly [K, V]>, flag: UpdateFlag = 'any'): void {
    const fd = this.#live();
    const list = [...entries];
    const vstride = this.stride * this.cpus;
    const keys = Buffer.alloc(list.length * this.info.keySize);
    const values = Buffer.alloc(list.length * vstride);
    list.forEach(([k, v], i) => {
      this.#key.encode(k, keys, i * this.info.keySize);
      this.#value.encode(v, values, i * vstride);
    });
    call(() => dp().mapUpdateMany(fd, keys, values, list.length, FLAG_VALUES[flag]));
  }

  /** Deletes `key`; false when it was absent. */
  delete(key: K): boolean {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    return call(() => dp().mapDelete(fd, k));
  }

  /** True when `key` is present. */
  has(key: K): boolean {
    const fd = this.#live();
    const k = this.#encodeKey(key);
    return call(() => dp().mapLookup(fd, k, this.#vbuf, 0));
  }

  /** Every key (collected in one native call, then decoded lazily). */
  *keys(): IterableIterator<K> {
    const fd = this.#live();
    const ks = this.info.keySize;
    const all = call(() => dp().mapKeys(fd, ks, this.info.maxEntries));
    for (let o = 0; o < all.length; o += ks) yield this.#key.decode(all, o);
  }

  /** Every entry (one batch read, decoded lazily; per-CPU values summed). */
  *entries(): IterableIterator<[K, V]> {
    const raw = this.readAllRaw();
    for (let i = 0; i < raw.count; i++) {
      yield [this.#key.decode(raw.keys, i * raw.keySize), this.#decodeValue(raw.values, i * raw.entryStride)];
    }
  }

  /** Iterates entries. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /**
   * The whole map in one native call: BPF_MAP_LOOKUP_BATCH, or next-key iteration where the
   * kernel or map type lacks batch ops (`mode` forces one). Keys and values stay raw.
   * `limit` stops after at most that many entries (default and at most the map's max_entries):
   * for an array, its first `limit` indexes; for a hash map, whole buckets up to the limit (the
   * kernel's batch hands out a bucket at a time, so a few fewer than `limit` may come back).
   */
  readAllRaw(mode: 'auto' | 'batch' | 'iterate' = 'auto', limit?: number): RawMapContents {
    const fd = this.#live();
    const entryStride = this.stride * this.cpus;
    if (limit !== undefined && !(typeof limit === 'number' && limit >= 0)) throw new ConfigError(`map ${this.info.name}: readAll limit must be a number >= 0, got ${String(limit)}`);
    const max = limit === undefined ? this.info.maxEntries : Math.min(Math.floor(limit), this.info.maxEntries);
    if (max === 0) return { keys: Buffer.alloc(0), values: Buffer.alloc(0), count: 0, keySize: this.info.keySize, entryStride, batch: false };
    const r = call(() => dp().mapReadAll(fd, this.info.keySize, entryStride, max, mode));
    this.#lastBatch = r.batch;
    return { keys: r.keys, values: r.values, count: r.count, keySize: this.info.keySize, entryStride, batch: r.batch };
  }

  /**
   * The whole map as a `Map` (per-CPU values summed). Keys that decode to objects or Buffers
   * are distinct `Map` keys per entry; look them up by iterating, or use number keys.
   * `limit` as in {@link readAllRaw}.
   */
  readAll(mode: 'auto' | 'batch' | 'iterate' = 'auto', limit?: number): Map<K, V> {
    const raw = this.readAllRaw(mode, limit);
    const m = new Map<K, V>();
    for (let i = 0; i < raw.count; i++) m.set(this.#key.decode(raw.keys, i * raw.keySize), this.#decodeValue(raw.values, i * raw.entryStride));
    return m;
  }

  /** The whole map with one value per possible CPU per key. */
  readAllPerCpu(mode: 'auto' | 'batch' | 'iterate' = 'auto'): Map<K, V[]> {
    const raw = this.readAllRaw(mode);
    const m = new Map<K, V[]>();
    for (let i = 0; i < raw.count; i++) {
      const per: V[] = [];
      for (let c = 0; c < this.cpus; c++) per.push(this.#value.decode(raw.values, i * raw.entryStride + c * this.stride));
      m.set(this.#key.decode(raw.keys, i * raw.keySize), per);
    }
    return m;
  }

  /** Kernel memory charged to the map (fdinfo `memlock`), bytes. */
  memoryBytes(): number {
    return Number(readFdinfo(this.#live()).memlock ?? 0);
  }

  /** Type, sizes, flags, id and memory from the kernel (fdinfo). */
  metadata(): MapMetadata {
    const fd = this.#live();
    const fi = readFdinfo(fd);
    return {
      name: this.info.name,
      type: this.info.type,
      id: Number(fi.map_id ?? this.info.id),
      keySize: Number(fi.key_size ?? this.info.keySize),
      valueSize: Number(fi.value_size ?? this.info.valueSize),
      maxEntries: Number(fi.max_entries ?? this.info.maxEntries),
      flags: fi.map_flags !== undefined ? Number.parseInt(fi.map_flags, 16) : this.info.flags,
      memoryBytes: Number(fi.memlock ?? 0),
      perCpu: this.perCpu,
      cpus: this.cpus,
    };
  }

  /** Pins the map at `path` on bpffs. */
  pin(path: string): void {
    const fd = this.#live();
    call(() => dp().objPin(fd, path));
  }

  /** Closes this map's fd; idempotent. The kernel map lives on while other fds or pins hold it. */
  close(): void {
    if (this.#fd < 0) return;
    registry.unregister(this);
    const fd = this.#fd;
    this.#fd = -1;
    dp().closeFd(fd);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

let typeIds: Map<string, number> | undefined;
/** libbpf's map type name -> enum value (from the addon, so it matches the libbpf built against). @internal */
export function mapTypeId(name: string): number | undefined {
  typeIds ??= new Map(call(() => dp().mapTypeNames()).map((n, i) => [n, i] as const));
  return typeIds.get(name);
}

/** Options of {@link createMap}. */
export const MapSpecSchema = z
  .object({
    /** libbpf's type name: hash, array, percpu_hash, percpu_array, lru_hash, lru_percpu_hash, ringbuf, ... */
    type: z.string().min(1),
    name: z.string().max(15).default(''),
    keySize: z.number().int().min(0),
    valueSize: z.number().int().min(0),
    maxEntries: z.number().int().min(1),
    /** BPF_F_* map flags (e.g. 1 = BPF_F_NO_PREALLOC). */
    flags: z.number().int().min(0).default(0),
  })
  .strict();
/** Options of {@link createMap}. */
export type MapSpec = z.input<typeof MapSpecSchema>;

/**
 * Creates a standalone map (bpf_map_create). Handy to pass to programs by fd, for tests and for
 * user-space-only maps.
 */
export function createMap<K = Buffer, V = Buffer>(spec: MapSpec, codecs?: { key?: Codec<K>; value?: Codec<V> }): BpfMap<K, V> {
  const s = validate(MapSpecSchema, spec, 'createMap options');
  const t = mapTypeId(s.type);
  if (t === undefined) throw new ConfigError(`createMap: unknown map type '${s.type}'`);
  const fd = call(() => dp().mapCreate(t, s.name, s.keySize, s.valueSize, s.maxEntries, s.flags));
  try {
    return mapFromFd<K, V>(fd, codecs);
  } finally {
    dp().closeFd(fd);
  }
}

/** A {@link BpfMap} over an fd the caller keeps owning (the map dups it). */
export function mapFromFd<K = Buffer, V = Buffer>(fd: number, codecs?: { key?: Codec<K>; value?: Codec<V> }): BpfMap<K, V> {
  const mi = call(() => dp().mapInfo(fd));
  const info: MapInfo = { ...mi, fd };
  return new BpfMap<K, V>(info, codecs);
}

/** Opens a map pinned on bpffs (bpf_obj_get). */
export function openPinnedMap<K = Buffer, V = Buffer>(path: string, codecs?: { key?: Codec<K>; value?: Codec<V> }): BpfMap<K, V> {
  const fd = call(() => dp().objGet(path));
  try {
    return mapFromFd<K, V>(fd, codecs);
  } finally {
    dp().closeFd(fd);
  }
}

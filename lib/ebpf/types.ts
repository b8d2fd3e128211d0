/**
 * The shared contract of `smoothtask/ebpf`: plain data that crosses from the addon, and the
 * interfaces the loader (object.ts, load.ts) and the data path (map.ts, attach.ts, link.ts,
 * ringbuf.ts, codec.ts, btf.ts) implement. Metric readers code against these.
 * @module
 */

/** What the addon reports for one program of a loaded object. */
export interface ProgramInfo {
  /** Program (function) name. */
  name: string;
  /** ELF section name, e.g. `tracepoint/syscalls/sys_enter_getpid`, `tp_btf/sched_switch`, `uprobe`. */
  section: string;
  /** Program type, libbpf's name: `tracepoint`, `raw_tracepoint`, `tracing`, `kprobe`, `perf_event`, `cgroup_skb`, ... */
  type: string;
  /** Expected attach type, libbpf's name (`trace_raw_tp`, `trace_fentry`, `trace_iter`, ...), or '' */
  attachType: string;
  /** Whether the program was loaded into the kernel (false when left out through `programs`). */
  loaded: boolean;
  /** Program fd, or -1 when not loaded. Owned by the object: never close it yourself. */
  fd: number;
  /** Kernel program id (0 when not loaded). */
  id: number;
  /** Program tag (hex), '' when not loaded. */
  tag: string;
}

/** What the addon reports for one map of a loaded object. */
export interface MapInfo {
  /** Map name (as in the ELF; internal maps are `.rodata`, `.bss`, `.data`). */
  name: string;
  /** Map type, libbpf's name: `hash`, `array`, `percpu_hash`, `percpu_array`, `lru_hash`, `ringbuf`, ... */
  type: string;
  /** Map fd. Owned by the object: never close it yourself. */
  fd: number;
  /** Kernel map id. */
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* flags. */
  flags: number;
  /** BTF type ids of key and value inside the object's BTF (0 if none). */
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

/**
 * Encodes and decodes fixed-size binary values (map keys and values, ring buffer records).
 * Generated decoders (from BTF at build time) and run-time BTF decoders both implement it.
 */
export interface Codec<T> {
  /** Size in bytes of one encoded value. */
  readonly size: number;
  /** Decodes one value starting at `offset` of `buf`. */
  decode(buf: Uint8Array, offset?: number): T;
  /** Encodes `value` into `buf` at `offset` (a new buffer of `size` bytes when `buf` is omitted). */
  encode(value: T, buf?: Uint8Array, offset?: number): Uint8Array;
}

/** How to attach a program. `auto` lets the section name decide, as libbpf's auto-attach does. */
export type AttachOptions =
  | { type?: 'auto' }
  | { type: 'tracepoint'; category: string; name: string }
  | { type: 'raw_tracepoint'; name: string }
  | { type: 'tp_btf' }
  | { type: 'uprobe'; binary: string; symbol?: string; offset?: number; pid?: number; retprobe?: boolean }
  | { type: 'kprobe'; function: string; offset?: number; retprobe?: boolean }
  | { type: 'fentry' | 'fexit' | 'fmod_ret' | 'lsm' }
  | {
      type: 'perf_event';
      event: { kind: 'software' | 'hardware'; name: string };
      /** Samples per second (mutually exclusive with `period`). */
      frequency?: number;
      period?: number;
      /** CPUs to sample, default all online CPUs. */
      cpus?: number[];
      /** Only this process (default: every process). */
      pid?: number;
    }
  | { type: 'iterator'; /** For task/file iterators, limit to one process. */ pid?: number; mapFd?: number }
  | { type: 'cgroup'; path: string; attachType?: string };

/** An attachment. Closing it detaches the program. */
export interface Link extends Disposable {
  /** The attach type used. */
  readonly type: string;
  /** True once closed. */
  readonly closed: boolean;
  /** Detaches; idempotent. */
  close(): void;
}

/** A BPF iterator attachment: each `read()` runs the iterator and returns its whole output. */
export interface IterLink extends Link {
  /** Runs the iterator once and returns everything it wrote (off the main thread). */
  read(): Promise<Buffer>;
  /** Runs the iterator once on the calling thread (for short walks: no thread hand-off). */
  readSync(): Buffer;
}

/** Flags for {@link BpfMapLike.set}. */
export type UpdateFlag = 'any' | 'noexist' | 'exist';

/** The typed map interface metric readers use. Implemented by `BpfMap` in map.ts. */
export interface BpfMapLike<K, V> extends Disposable {
  readonly name: string;
  readonly info: MapInfo;
  /** True for per-CPU map types. */
  readonly perCpu: boolean;
  /** The value under `key`, or undefined (per-CPU maps: summed). */
  get(key: K): V | undefined;
  /** Stores `value` under `key`; `flag` asks for a new key (`noexist`) or an existing one (`exist`). */
  set(key: K, value: V, flag?: UpdateFlag): void;
  /** Deletes `key`; false when it was absent. */
  delete(key: K): boolean;
  /** Whether `key` is present. */
  has(key: K): boolean;
  /** Iterates the keys (next-key iteration). */
  keys(): IterableIterator<K>;
  /** Iterates key/value pairs. */
  entries(): IterableIterator<[K, V]>;
  /** Whole map, batch op where available (falls back to iteration). Per-CPU values summed. */
  readAll(): Map<K, V>;
  /** Per-CPU maps: one value per possible CPU. */
  getPerCpu(key: K): V[] | undefined;
  /** Bytes of kernel memory the map uses (fdinfo memlock). */
  memoryBytes(): number;
  /** Closes this handle's fd; idempotent. */
  close(): void;
}

/** Options of a ring buffer consumer. */
export interface RingBufferOptions<T> {
  /** Decoder for records; default: raw `Buffer`s. */
  codec?: Codec<T>;
  /** Most records handed to JS per batch (default 4096). */
  batchSize?: number;
  /** Most undelivered records held for JS before the consumer stops reading (default 65536). */
  highWaterMark?: number;
}

/** Counters of a ring buffer consumer. */
export interface RingBufferStats {
  /** Records handed to JS. */
  delivered: number;
  /** Bytes handed to JS. */
  bytes: number;
  /** Batches handed to JS. */
  batches: number;
  /** Times the consumer stopped reading because JS was behind. */
  pauses: number;
  /** Records the BPF side could not reserve, when the program counts them in a map (else 0). */
  dropped: number;
}

/** A batch of records: what {@link RingBufferLike.batches} yields. */
export interface RecordBatchLike<T> {
  /** Number of records. */
  readonly length: number;
  /** Record `i` (decoded when the consumer has a codec). */
  get(i: number): T;
}

/**
 * A ring buffer consumer: async-iterable over records, over batches with `batches()`, or
 * batches through `on('batch')`. What ring and perf buffer consumers have in common.
 */
export interface RingBufferLike<T> extends AsyncIterable<T>, Disposable {
  /** Counters of this consumer. */
  stats(): RingBufferStats;
  /** Async iteration over batches as the consumer thread delivered them (no promise per record). */
  batches(): AsyncIterable<RecordBatchLike<T>>;
  /** Stops and joins the consumer thread; idempotent. */
  close(): void;
}

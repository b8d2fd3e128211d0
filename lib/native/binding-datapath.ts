/**
 * Types of the data path's native exports (native/map.cc, attach.cc, ringbuf.cc), all under
 * `binding.dp` so they never collide with the loader's names.
 * @internal
 */

/** A whole-map read done in one native call. */
export interface NativeMapReadAll {
  /** `count` keys back to back. */
  keys: Buffer;
  /** `count` values back to back (per-CPU maps: `stride * cpus` bytes each). */
  values: Buffer;
  count: number;
  /** True when BPF_MAP_LOOKUP_BATCH served the read (false: next-key iteration). */
  batch: boolean;
}

/** What the kernel says about a map fd (bpf_obj_get_info_by_fd). */
export interface NativeMapInfo {
  type: string;
  id: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

/** What the kernel says about a program fd. */
export interface NativeProgInfo {
  type: string;
  id: number;
  name: string;
  tag: string;
  attachBtfId: number;
}

/** Counters of a native ring buffer consumer. */
export interface NativeRingStats {
  delivered: number;
  bytes: number;
  batches: number;
  pauses: number;
  pending: number;
  /** Set when the consumer thread stopped on an error. */
  errno?: number;
}

/** A native ring buffer consumer (native/ringbuf.cc). */
export interface NativeRingBuffer {
  /** Tells the consumer thread that JS is done with `records` delivered records. */
  ack(records: number): void;
  stats(): NativeRingStats;
  ref(): void;
  unref(): void;
  /** Stops and joins the consumer thread, closes its fds; idempotent. */
  close(): void;
}

/**
 * Batch callback of a native consumer (native/consumer.cc): a batch of `count` records, or, once,
 * `(null, null, 0, error)` when the consumer thread stopped on an error (a native error object
 * with `code` and `errno`, for fromNative).
 */
/**
 * A batch from the consumer thread: `data` is a Buffer, or with `reuse` an ArrayBuffer over
 * pooled memory whose `lease` goes back through `releaseBatch` once the batch is consumed.
 */
export type NativeOnBatch = (data: Buffer | ArrayBuffer | null, offsets: Uint32Array | null, count: number, error?: unknown, lease?: number) => void;

/** Constructor of {@link NativeRingBuffer}. */
export interface NativeRingBufferCtor {
  new (mapFd: number, opts: { batchSize: number; highWaterMark: number; batchBytes: number; reuse?: boolean }, onBatch: NativeOnBatch): NativeRingBuffer;
}

/** The data path part of the addon. */
export interface DatapathNative {
  dupFd(fd: number): number;
  adoptFd(fd: number): number;
  closeFd(fd: number): void;
  numPossibleCpus(): number;
  mapTypeNames(): string[];
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number): number;
  mapInfo(fd: number): NativeMapInfo;
  mapLookup(fd: number, key: Uint8Array, value: Uint8Array, flags?: number): boolean;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags?: number): void;
  mapDelete(fd: number, key: Uint8Array): boolean;
  mapNextKey(fd: number, key: Uint8Array | null, next: Uint8Array): boolean;
  mapReadAll(fd: number, keySize: number, valueStride: number, maxEntries: number, mode: 'auto' | 'batch' | 'iterate'): NativeMapReadAll;
  mapKeys(fd: number, keySize: number, maxEntries: number): Buffer;
  mapUpdateMany(fd: number, keys: Uint8Array, values: Uint8Array, count: number, flags?: number): void;
  objGet(path: string): number;
  objPin(fd: number, path: string): void;

  progInfo(fd: number): NativeProgInfo;
  /** libbpf's program and expected attach type for a section name ('' when unknown). */
  sectionTypes(section: string): { type: string; attachType: string };
  attachTracepoint(progFd: number, category: string, name: string): number[];
  /** raw_tp when `name` is set; tp_btf/fentry/fexit/fmod_ret/lsm with name '' (feature names the kind). */
  attachRawTracepoint(progFd: number, name: string, feature: string): number[];
  resolveSymbol(binary: string, symbol: string): number;
  attachProbe(progFd: number, pmu: 'uprobe' | 'kprobe', target: string, offset: number, pid: number, retprobe: boolean): number[];
  attachPerfEvent(progFd: number, type: number, config: number, useFreq: boolean, sampleValue: number, cpus: number[], pid: number): number[];
  attachCgroup(progFd: number, cgroupPath: string, attachType: string): number[];
  attachIter(progFd: number, mapFd: number, pid: number): number[];
  iterRead(linkFd: number): Promise<Buffer>;
  /** The same read on the calling thread. */
  iterReadSync(linkFd: number): Buffer;
  linkPin(linkFd: number, path: string): void;
  testRun(progFd: number, repeat: number, cpu: number, ctx?: Uint8Array): Promise<{ retval: number; durationNs: number }>;
  attachFeatures(): { uprobe: boolean; kprobe: boolean; tracefs: boolean };

  RingBufferConsumer: NativeRingBufferCtor;
  /** Test hook (native/consumer.cc): the next consumer poll step ('poll') or construction ('thread') fails. */
  consumerTestFault(kind: 'poll' | 'thread'): void;
  /** Test hook: consumers registered for env cleanup and exit (open, thread running or stopped, not closed). */
  consumerRegistrations(): number;
  /** A pooled batch was consumed: its ArrayBuffers are detached and its memory reused (native/consumer.cc). */
  releaseBatch(lease: number, data: ArrayBuffer, offsets: ArrayBuffer): void;
  /** Bytes held by the batch pool (native/batch_pool.h). */
  batchPoolBytes(): number;
}

/** Exports of the data path's native files. */
export interface DatapathBinding {
  readonly dp: DatapathNative;
}

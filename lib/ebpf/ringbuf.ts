/**
 * Ring buffer consumers: {@link RingBuffer} reads a `BPF_MAP_TYPE_RINGBUF` map on a dedicated
 * native thread and hands JS batches of records, as an async iterator or `'batch'` events,
 * with backpressure instead of unbounded buffering.
 * @module
 */
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import type { NativeRingBuffer, NativeRingBufferCtor } from '../native/binding-datapath.js';
import { type BpfError, ClosedError, fromNative, UnsupportedError } from './errors.js';
import { BpfMap, dp } from './map.js';
import type { Codec, MapInfo, RingBufferLike, RingBufferOptions, RingBufferStats } from './types.js';

const kRelease = Symbol('release');

/**
 * A batch of records as the consumer thread delivered them: one copied buffer plus offsets.
 * Records decode lazily, so a handler that only counts or reads a field pays for nothing else.
 *
 * From a consumer with `reuseBuffers`, the batch's memory is reused once the batch is consumed
 * (its 'batch' handlers returned and no iterator holds it, or the iterator moved past it): then
 * {@link data} and {@link offsets} are detached (empty), and so is every record view taken
 * from them. Decode or copy what you keep (the built-in codecs copy).
 */
export class RecordBatch<T = Buffer> implements Iterable<T> {
  /** The records' bytes, back to back. */
  readonly data: Buffer;
  /** `length + 1` offsets into `data`: record i is `data[offsets[i], offsets[i+1])`. */
  readonly offsets: Uint32Array;
  /** Number of records. */
  readonly length: number;
  readonly #codec: Codec<T> | undefined;
  #release: (() => void) | undefined;

  /** @internal */
  constructor(data: Buffer, offsets: Uint32Array, length: number, codec?: Codec<T>, release?: () => void) {
    this.data = data;
    this.offsets = offsets;
    this.length = length;
    this.#codec = codec;
    this.#release = release;
  }

  /** The batch is consumed: pooled memory goes back (once). @internal */
  [kRelease](): void {
    const r = this.#release;
    this.#release = undefined;
    r?.();
  }

  /** Record `i`: decoded with the codec, else a `Buffer` view into {@link data}. */
  get(i: number): T {
    const start = this.offsets[i] as number;
    if (this.#codec) return this.#codec.decode(this.data, start);
    return this.data.subarray(start, this.offsets[i + 1]) as unknown as T;
  }

  /** Size in bytes of record `i`. */
  sizeOf(i: number): number {
    return (this.offsets[i + 1] as number) - (this.offsets[i] as number);
  }

  /** All records, decoded. */
  toArray(): T[] {
    const r = new Array<T>(this.length);
    for (let i = 0; i < this.length; i++) r[i] = this.get(i);
    return r;
  }

  /** Iterates the records of the batch. */
  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/** Where the BPF program counts records it could not reserve (a u32-keyed map of u64 or u32 counters). */
export type DropCounter = MapInfo | { map: MapInfo; key?: number } | (() => number | bigint);

/** Options of {@link RingBuffer} beyond the shared {@link RingBufferOptions}. */
export interface RingBufferExtraOptions {
  /** Read by `stats().dropped`: the program's count of failed reserves. */
  dropCounter?: DropCounter;
  /** Most bytes per batch (default 1 MiB). */
  batchBytes?: number;
  /** Keep the process alive while open (default true, like a socket); see {@link RingBuffer.unref}. */
  ref?: boolean;
  /**
   * Reuse batch memory (default false): each batch's memory goes back to a pool as soon as the
   * batch is consumed, and the next batch is written into it, instead of fresh memory freed at
   * GC. Several times faster for raw records (docs/ebpf-datapath.md); the price is that a
   * consumed batch, and every record view into it, is detached (reads as empty): decode or copy
   * what you keep. Records decoded with the built-in codecs (lib/ebpf/codec) are copies and
   * are not affected.
   */
  reuseBuffers?: boolean;
}

const OptionsSchema = z
  .object({
    codec: z.custom<Codec<unknown>>((v) => v === undefined || (typeof v === 'object' && v !== null && 'decode' in v && 'size' in v)).optional(),
    batchSize: z.number().int().min(1).max(1 << 20).default(4096),
    highWaterMark: z.number().int().min(1).max(1 << 26).default(65536),
    batchBytes: z.number().int().min(4096).max(1 << 28).default(1 << 20),
    dropCounter: z.unknown().optional(),
    ref: z.boolean().default(true),
    reuseBuffers: z.boolean().default(false),
  })
  .strict();

const kOnBatch = Symbol('onBatch');

let nextNative: NativeRingBufferCtor | undefined;
/**
 * Makes the next RingBuffer constructed (synchronously after this call) drive `ctor` instead of
 * the ring buffer consumer: PerfBuffer's constructor calls it right before `super()`.
 * @internal
 */
export function useNativeConsumerOnce(ctor: NativeRingBufferCtor): void {
  nextNative = ctor;
}

// Open, referenced consumers stay reachable like active handles: a consumer kept only through
// its 'batch' listener must not be collected (and stopped) under the user's feet.
const active = new Set<RingBuffer<unknown>>();

/** Events of {@link RingBuffer}. */
export interface RingBufferEvents<T> {
  batch: [batch: RecordBatch<T>];
  /** The consumer thread stopped on an error (see {@link RingBuffer.error}); 'close' follows. */
  error: [error: BpfError];
  close: [];
}

/**
 * Consumer of one ring buffer map. A native thread polls the ring and delivers batches of up
 * to `batchSize` records. Consume with `for await (const rec of rb)` (records) or
 * `rb.on('batch', (b) => ...)` (whole batches, fastest), or both.
 *
 * Backpressure: records count as pending until consumed (a 'batch' handler returned, or the
 * iterator moved past them). At `highWaterMark` pending records the thread stops reading;
 * the kernel ring fills and the BPF program's reserves fail (count them and pass the counter
 * as `dropCounter` to see them in `stats().dropped`). Memory stays bounded by the mark.
 *
 * Batches that arrive with no listener and no iterator wait (up to the mark) for an iterator.
 *
 * Failure: if the consumer thread's poll fails (the kernel or libbpf returns an error), the
 * consumer closes itself and the error (a {@link BpfError} with the `errno`, also kept in
 * {@link RingBuffer.error}) is emitted as `'error'` (when someone listens) and thrown by every
 * iterator once it has yielded the records received before the failure; then `'close'` is
 * emitted. With no `'error'` listener and no iterator it becomes a process warning, never an
 * uncaught exception.
 */
export class RingBuffer<T = Buffer> extends EventEmitter<RingBufferEvents<T>> implements RingBufferLike<T> {
  /** The ring buffer map. */
  readonly info: MapInfo;
  #native: NativeRingBuffer | undefined;
  readonly #codec: Codec<T> | undefined;
  readonly #queue: RecordBatch<T>[] = [];
  #queued = 0;
  #iterators = 0;
  #wake: (() => void) | undefined;
  #ref: boolean;
  #dropMap: BpfMap | undefined;
  #dropKey = 0;
  #dropFn: (() => number | bigint) | undefined;
  #final: (RingBufferStats & { pending: number }) | undefined;
  #error: BpfError | undefined;

  /**
   * Starts consuming the ringbuf map `info` (its fd is duplicated) on a dedicated thread.
   * Throws UnsupportedError for other map types (use {@link PerfBuffer} for `perf_event_array`).
   */
  constructor(info: MapInfo, opts: RingBufferOptions<T> & RingBufferExtraOptions = {}) {
    super();
    const native = nextNative;
    nextNative = undefined;
    if (!native && info.type !== 'ringbuf') {
      throw new UnsupportedError(
        `map '${info.name}' is a ${info.type} map, not a ringbuf (perf buffers are not supported by this consumer)`,
        info.type === 'perf_event_array' ? 'perf buffer consumer' : 'ringbuf',
      );
    }
    const o = validate(OptionsSchema, opts, `ring buffer options of '${info.name}'`);
    this.info = { ...info };
    this.#codec = opts.codec;
    const dc = opts.dropCounter;
    if (typeof dc === 'function') this.#dropFn = dc;
    else if (dc) {
      const m = 'map' in dc ? dc.map : dc;
      this.#dropKey = 'map' in dc ? (dc.key ?? 0) : 0;
      this.#dropMap = new BpfMap(m);
    }
    const weak = new WeakRef(this);
    try {
      this.#native = new (native ?? dp().RingBufferConsumer)(info.fd, { batchSize: o.batchSize, highWaterMark: o.highWaterMark, batchBytes: o.batchBytes, reuse: o.reuseBuffers }, (data, offsets, count, error, lease) =>
        weak.deref()?.[kOnBatch](data, offsets, count, error, lease),
      );
    } catch (e) {
      this.#dropMap?.close();
      throw fromNative(e, new Error());
    }
    this.#ref = o.ref;
    if (this.#ref) active.add(this as RingBuffer<unknown>);
    else this.#native.unref();
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#native === undefined;
  }

  /** The error that stopped the consumer thread, if one did (the consumer is closed then). */
  get error(): BpfError | undefined {
    return this.#error;
  }

  /** @internal */
  [kOnBatch](data: Buffer | ArrayBuffer | null, offsets: Uint32Array | null, count: number, error?: unknown, lease?: number): void {
    if (lease !== undefined && data instanceof ArrayBuffer && offsets) {
      // pooled memory: back to the pool once consumed (or, closed already, at once)
      const ab = data;
      const release = (): void => dp().releaseBatch(lease, ab, offsets.buffer as ArrayBuffer);
      if (!this.#native) return release();
      return this.#onBatch(new RecordBatch<T>(Buffer.from(ab, 0, ab.byteLength), offsets, count, this.#codec, release));
    }
    if (!this.#native) return;
    if (data === null || offsets === null) {
      this.#fail(fromNative(error) as BpfError);
      return;
    }
    this.#onBatch(new RecordBatch<T>(data as Buffer, offsets, count, this.#codec));
  }

  #onBatch(batch: RecordBatch<T>): void {
    const native = this.#native as NativeRingBuffer;
    const count = batch.length;
    const listened = this.listenerCount('batch') > 0;
    if (listened) {
      try {
        this.emit('batch', batch);
      } catch (e) {
        if (this.#iterators === 0) batch[kRelease]();
        throw e;
      }
    }
    if (this.#iterators > 0 || !listened) {
      // Held for an iterator: pending until it moves past the batch.
      this.#queue.push(batch);
      this.#queued += count;
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    } else {
      native.ack(count);
      batch[kRelease]();
    }
  }

  /** Records received and not yet consumed by an iterator. */
  get queuedRecords(): number {
    return this.#queued;
  }

  /** Async iteration over batches (the cheap way to iterate: no per-record promise). */
  async *batches(): AsyncGenerator<RecordBatch<T>, void, undefined> {
    this.#iterators++;
    try {
      for (;;) {
        const b = this.#queue.shift();
        if (b) {
          this.#queued -= b.length;
          try {
            yield b;
          } finally {
            this.#native?.ack(b.length);
            b[kRelease]();
          }
          continue;
        }
        if (!this.#native) {
          if (this.#error) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    } finally {
      this.#iterators--;
    }
  }

  /** Async iteration over records (decoded with the codec, else `Buffer`s). Ends on close(). */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const b of this.batches()) {
      for (let i = 0; i < b.length; i++) yield b.get(i);
    }
  }

  /** Counters: delivered records/bytes/batches, pauses for backpressure, drops from the drop counter. */
  stats(): RingBufferStats & { pending: number } {
    if (!this.#native) return this.#final ?? { delivered: 0, bytes: 0, batches: 0, pauses: 0, dropped: 0, pending: 0 };
    const s = this.#native.stats();
    return { delivered: s.delivered, bytes: s.bytes, batches: s.batches, pauses: s.pauses, dropped: this.#dropped(), pending: s.pending };
  }

  #dropped(): number {
    if (this.#dropFn) return Number(this.#dropFn());
    const m = this.#dropMap;
    if (!m || m.closed) return 0;
    const k = Buffer.alloc(m.info.keySize);
    if (k.length >= 4) k.writeUInt32LE(this.#dropKey, 0);
    const v = m.get(k);
    if (!v) return 0;
    return v.length >= 8 ? Number(v.readBigUInt64LE(0)) : v.length >= 4 ? v.readUInt32LE(0) : 0;
  }

  /** Keep the process alive while open (default). */
  ref(): this {
    if (this.#native && !this.#ref) {
      this.#ref = true;
      this.#native.ref();
      active.add(this as RingBuffer<unknown>);
    }
    return this;
  }

  /** Let the process exit while this consumer is open (the thread is stopped at exit). */
  unref(): this {
    if (this.#native && this.#ref) {
      this.#ref = false;
      this.#native.unref();
      active.delete(this as RingBuffer<unknown>);
    }
    return this;
  }

  /** Stops and joins the consumer thread; iterators end after the records already received. Idempotent. */
  close(): void {
    const n = this.#native;
    if (!n) return;
    this.#final = { ...this.stats() };
    this.#native = undefined;
    active.delete(this as RingBuffer<unknown>);
    n.close();
    this.#dropMap?.close();
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const err = this.#error;
    if (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else if (this.#iterators === 0) process.emitWarning(err);
    }
    this.emit('close');
  }

  // The consumer thread stopped on an error: close, then report it ('error', iterators).
  #fail(err: BpfError): void {
    this.#error = err;
    this.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Throws ClosedError when closed. @internal */
  assertOpen(): void {
    if (!this.#native) throw new ClosedError(`ring buffer ${this.info.name}`);
  }
}

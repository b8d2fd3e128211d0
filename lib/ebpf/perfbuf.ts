/**
 * Perf buffer consumers: {@link PerfBuffer} reads a `BPF_MAP_TYPE_PERF_EVENT_ARRAY` map (one
 * buffer per CPU) with the design of {@link RingBuffer}, as the fallback for kernels without
 * ringbuf (before 5.8).
 * @module
 */
import { z } from 'zod';
import { validate } from '../errors/validate.js';
import { loadAddon } from '../native/addon.js';
import type { NativeOnBatch, NativeRingBufferCtor } from '../native/binding-datapath.js';
import type { NativePerfBuffer } from '../native/binding-perfbuf.js';
import { UnsupportedError } from './errors.js';
import { RingBuffer, type RingBufferExtraOptions, useNativeConsumerOnce } from './ringbuf.js';
import type { MapInfo, RingBufferLike, RingBufferOptions, RingBufferStats } from './types.js';

/** Options of {@link PerfBuffer} beyond those of {@link RingBuffer}. */
export interface PerfBufferExtraOptions {
  /** Pages per CPU buffer, a power of two (default 64: 256 KiB per CPU with 4 KiB pages). */
  pageCount?: number;
}

/** Counters of a {@link PerfBuffer}. */
export interface PerfBufferStats extends RingBufferStats {
  /** Records received and not yet consumed. */
  pending: number;
  /** Samples the kernel dropped because a per-CPU buffer was full (its PERF_RECORD_LOST counts). */
  lost: number;
}

const PageSchema = z
  .object({
    pageCount: z
      .number()
      .int()
      .min(1)
      .max(1 << 16)
      .refine((n) => (n & (n - 1)) === 0, 'must be a power of two')
      .default(64),
  })
  .loose();

/**
 * Consumer of one perf event array map, with the same API and guarantees as {@link RingBuffer}
 * (batches of {@link RecordBatch}, async iteration, `'batch'` events, backpressure at
 * `highWaterMark`, close() joining the thread, exit handling). The BPF side writes with
 * `bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...)`.
 *
 * Differences: records are per-CPU ordered only (no order across CPUs); a record's size
 * includes the kernel's padding to 8 bytes (a 16-byte record arrives as 20 bytes: decode with a
 * codec or read the first bytes); when a CPU's buffer is full the kernel drops samples and
 * counts them, and `stats().lost` sums those counts.
 */
export class PerfBuffer<T = Buffer> extends RingBuffer<T> implements RingBufferLike<T> {
  readonly #perf: { native?: NativePerfBuffer };

  /**
   * Starts consuming the perf_event_array map `info` (its fd is duplicated) on a dedicated
   * thread. Throws UnsupportedError for other map types.
   */
  constructor(info: MapInfo, opts: RingBufferOptions<T> & RingBufferExtraOptions & PerfBufferExtraOptions = {}) {
    if (info.type !== 'perf_event_array') {
      throw new UnsupportedError(`map '${info.name}' is a ${info.type} map, not a perf_event_array`, 'perf buffer consumer');
    }
    const { pageCount } = validate(PageSchema, { pageCount: opts.pageCount }, `perf buffer options of '${info.name}'`);
    const { pageCount: _omit, ...rest } = opts;
    const holder: { native?: NativePerfBuffer } = {};
    const Ctor = loadAddon().dp.PerfBufferConsumer;
    // RingBuffer drives any consumer with the ring buffer protocol; this one also needs pageCount.
    const make = function (fd: number, o: { batchSize: number; highWaterMark: number; batchBytes: number; reuse?: boolean }, onBatch: NativeOnBatch) {
      holder.native = new Ctor(fd, { ...o, pageCount }, onBatch);
      return holder.native;
    } as unknown as NativeRingBufferCtor;
    useNativeConsumerOnce(make);
    super(info, rest);
    this.#perf = holder;
  }

  /** Counters: those of {@link RingBuffer.stats} plus `lost` samples. */
  override stats(): PerfBufferStats {
    const s = super.stats();
    return { ...s, lost: this.#perf?.native?.stats().lost ?? 0 };
  }
}

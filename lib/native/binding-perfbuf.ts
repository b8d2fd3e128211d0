/**
 * Types of native/perfbuf.cc's exports (the perf buffer consumer).
 * @internal
 */
import type { NativeOnBatch, NativeRingBuffer, NativeRingStats } from './binding-datapath.js';

/** Counters of a native perf buffer consumer: the ring buffer ones plus lost samples. */
export interface NativePerfStats extends NativeRingStats {
  /** Samples the kernel could not write into a full per-CPU buffer (PERF_RECORD_LOST sums). */
  lost: number;
}

/** A native perf buffer consumer: same protocol as {@link NativeRingBuffer}. */
export interface NativePerfBuffer extends NativeRingBuffer {
  stats(): NativePerfStats;
}

/** Constructor of {@link NativePerfBuffer}. */
export interface NativePerfBufferCtor {
  new (
    mapFd: number,
    /** pageCount: pages per CPU buffer, a power of two. */
    opts: { batchSize: number; highWaterMark: number; batchBytes: number; pageCount: number },
    onBatch: NativeOnBatch,
  ): NativePerfBuffer;
}

/** Exports of native/perfbuf.cc (under `dp`, like the rest of the data path). */
export interface PerfbufBinding {
  readonly dp: { PerfBufferConsumer: NativePerfBufferCtor };
}

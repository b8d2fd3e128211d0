/**
 * Snapshot schema of the `gpu` family.
 * @module
 */
import { z } from 'zod';
import { SnapshotBaseSchema } from '../family.js';

/** CUDA driver API and dma-fence activity of one process (cumulative since the reader opened). */
export const GpuProcessSchema = z.object({
  pid: z.number(),
  comm: z.string(),
  /** cuLaunchKernel (and _ptsz, Ex, Cooperative) calls. */
  launches: z.number(),
  /** Successful cuMemAlloc_v2 / cuMemAllocManaged / cuMemAllocAsync. */
  allocations: z.number(),
  allocatedBytes: z.number(),
  /** Allocation calls that returned an error. */
  failedAllocations: z.number(),
  /** cuMemFree_v2 / cuMemFreeAsync of allocations seen by the reader. */
  frees: z.number(),
  freedBytes: z.number(),
  /** Frees of pointers allocated before the reader attached (size unknown). */
  untrackedFrees: z.number(),
  /** allocatedBytes − freedBytes: device memory this process holds through the driver API. */
  outstandingBytes: z.number(),
  htodCopies: z.number(),
  htodBytes: z.number(),
  dtohCopies: z.number(),
  dtohBytes: z.number(),
  dtodCopies: z.number(),
  dtodBytes: z.number(),
  /** cuCtxSynchronize + cuStreamSynchronize returns. */
  syncs: z.number(),
  /** Time spent inside them, s. */
  syncSeconds: z.number(),
  syncMaxSeconds: z.number(),
  /** dma_fence_emit in this process's context (jobs submitted, open DRM drivers). */
  fencesEmitted: z.number(),
  fencesSignaled: z.number(),
  /** Sum and max of emit → signalled latency, s. */
  fenceLatencySeconds: z.number(),
  fenceLatencyMaxSeconds: z.number(),
  /** Device memory NVML attributes to the process, bytes (null: NVML does not say). */
  nvmlMemoryBytes: z.number().nullable(),
});
/** One process's GPU activity. */
export type GpuProcess = z.infer<typeof GpuProcessSchema>;

const NvmlDeviceSchema = z.object({
  index: z.number(),
  name: z.string(),
  uuid: z.string(),
  utilizationGpuPercent: z.number().nullable(),
  utilizationMemoryPercent: z.number().nullable(),
  memoryTotalBytes: z.number().nullable(),
  memoryUsedBytes: z.number().nullable(),
  memoryFreeBytes: z.number().nullable(),
  temperatureC: z.number().nullable(),
  powerWatts: z.number().nullable(),
  powerLimitWatts: z.number().nullable(),
  clocksMHz: z.object({ graphics: z.number().nullable(), sm: z.number().nullable(), memory: z.number().nullable(), video: z.number().nullable() }),
  processes: z.array(z.object({ pid: z.number(), usedMemoryBytes: z.number().nullable() })).nullable(),
});

/** Snapshot of the `gpu` family. */
export const GpuSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('gpu'),
  /** CUDA uprobes: the library they are attached to and the symbols hooked. */
  cuda: z.object({
    library: z.string().nullable(),
    pid: z.number().nullable(),
    symbols: z.array(z.string()),
    reason: z.string(),
  }),
  /** dma-fence tracepoints attached. */
  fences: z.object({ attached: z.boolean(), reason: z.string() }),
  processes: z.array(GpuProcessSchema),
  nvml: z.object({ available: z.boolean(), library: z.string().nullable(), reason: z.string(), driverVersion: z.string().nullable(), devices: z.array(NvmlDeviceSchema) }),
  /** What this host lacks, in words (no CUDA driver, no NVML, ...). */
  lacks: z.array(z.string()),
});
/** Snapshot of the `gpu` family. */
export type GpuSnapshot = z.infer<typeof GpuSnapshotSchema>;

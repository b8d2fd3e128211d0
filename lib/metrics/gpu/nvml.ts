/**
 * NVIDIA device metrics through NVML, loaded with `dlopen` by the addon when present. A host
 * without `libnvidia-ml.so.1` (or without the addon) gets `{ available: false, reason }` and
 * no devices: a result, never an error.
 * @module
 */
import { z } from 'zod';
import { validate } from '../../errors/validate.js';
import { loadAddon } from '../../native/addon.js';
import type { NvmlSampleRaw } from '../../native/binding-nvml.js';

/** One compute process on a device. */
export interface NvmlProcess {
  pid: number;
  /** Device memory in bytes; null when NVML cannot tell (no privileges, MIG, WDDM). */
  usedMemoryBytes: number | null;
}

/** One NVIDIA device. Fields the device does not support are null. */
export interface NvmlDevice {
  index: number;
  name: string;
  uuid: string;
  /** Percent of time a kernel ran over the last sample period (NVML's window, 1/6 s to 1 s). */
  utilizationGpuPercent: number | null;
  /** Percent of time device memory was read or written. */
  utilizationMemoryPercent: number | null;
  memoryTotalBytes: number | null;
  memoryUsedBytes: number | null;
  memoryFreeBytes: number | null;
  temperatureC: number | null;
  powerWatts: number | null;
  powerLimitWatts: number | null;
  clocksMHz: { graphics: number | null; sm: number | null; memory: number | null; video: number | null };
  /** Compute processes, null when the query is not supported. */
  processes: NvmlProcess[] | null;
}

/** One NVML sample. */
export interface NvmlSample {
  /** True when NVML was loaded and initialised (there may still be 0 devices). */
  available: boolean;
  /** Library file opened, null when none. */
  library: string | null;
  /** Why NVML is unavailable ('' when available). */
  reason: string;
  driverVersion: string | null;
  devices: NvmlDevice[];
}

/** Options of {@link sampleNvml}. */
export const NvmlOptionsSchema = z
  .object({
    /** Library name or path; default env `SMOOTHTASK_NVML_LIB`, else `libnvidia-ml.so.1` through the dynamic loader. */
    library: z.string().min(1).optional(),
  })
  .strict();
/** Options of {@link sampleNvml}. */
export type NvmlOptions = z.input<typeof NvmlOptionsSchema>;

const mw = (v: number | null): number | null => (v === null ? null : v / 1000);

function convert(raw: NvmlSampleRaw): NvmlSample {
  return {
    available: raw.available,
    library: raw.library,
    reason: raw.reason,
    driverVersion: raw.driverVersion,
    devices: raw.devices.map((d) => ({
      index: d.index,
      name: d.name,
      uuid: d.uuid,
      utilizationGpuPercent: d.utilizationGpu,
      utilizationMemoryPercent: d.utilizationMemory,
      memoryTotalBytes: d.memoryTotal,
      memoryUsedBytes: d.memoryUsed,
      memoryFreeBytes: d.memoryFree,
      temperatureC: d.temperatureC,
      powerWatts: mw(d.powerMilliwatts),
      powerLimitWatts: mw(d.powerLimitMilliwatts),
      clocksMHz: { graphics: d.clockGraphicsMHz, sm: d.clockSmMHz, memory: d.clockMemoryMHz, video: d.clockVideoMHz },
      processes: d.processes ? d.processes.map((p) => ({ pid: p.pid, usedMemoryBytes: p.usedMemoryBytes })) : null,
    })),
  };
}

/**
 * Samples every NVIDIA device through NVML (off the main thread). Resolves with
 * `available: false` when NVML or the addon is missing.
 */
export async function sampleNvml(options: NvmlOptions = {}): Promise<NvmlSample> {
  const opts = validate(NvmlOptionsSchema, options, 'NVML options');
  const library = opts.library ?? process.env.SMOOTHTASK_NVML_LIB ?? undefined;
  let addon;
  try {
    addon = loadAddon();
  } catch (e) {
    return { available: false, library: null, reason: `native addon not available: ${(e as Error).message.split('\n')[0]}`, driverVersion: null, devices: [] };
  }
  if (typeof addon.nvmlSample !== 'function') {
    return { available: false, library: null, reason: 'native addon built without the nvml part', driverVersion: null, devices: [] };
  }
  return convert(await addon.nvmlSample(library));
}

/** Releases NVML (nvmlShutdown) if the addon initialised it; a later sample initialises it again. */
export function shutdownNvml(): void {
  try {
    const addon = loadAddon();
    if (typeof addon.nvmlShutdown === 'function') addon.nvmlShutdown();
  } catch {
    /* nothing was initialised */
  }
}

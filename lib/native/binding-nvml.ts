/**
 * Types of native/nvml.cc: NVML (libnvidia-ml.so.1) sampled through dlopen on a thread of its own.
 * @internal
 */

/** One process NVML sees on a device. */
export interface NvmlProcessRaw {
  pid: number;
  /** Bytes of device memory, null when NVML cannot tell (e.g. without privileges, or under MIG). */
  usedMemoryBytes: number | null;
}

/** One device as NVML reports it; null where the device does not support the query. */
export interface NvmlDeviceRaw {
  index: number;
  name: string;
  uuid: string;
  utilizationGpu: number | null;
  utilizationMemory: number | null;
  memoryTotal: number | null;
  memoryUsed: number | null;
  memoryFree: number | null;
  temperatureC: number | null;
  powerMilliwatts: number | null;
  powerLimitMilliwatts: number | null;
  clockGraphicsMHz: number | null;
  clockSmMHz: number | null;
  clockMemoryMHz: number | null;
  clockVideoMHz: number | null;
  /** Compute processes, null when the query is not supported. */
  processes: NvmlProcessRaw[] | null;
}

/** Result of one NVML sample. `available: false` (with `reason`) is a result, not an error. */
export interface NvmlSampleRaw {
  available: boolean;
  /** The library name or path that was opened, null when none could be. */
  library: string | null;
  /** Why NVML is not available ('' when it is). */
  reason: string;
  driverVersion: string | null;
  devices: NvmlDeviceRaw[];
}

/** Exports of native/nvml.cc. */
export interface NvmlBinding {
  /** Samples every device; `library` is a file name or path (default libnvidia-ml.so.1, then libnvidia-ml.so). */
  nvmlSample(library?: string): Promise<NvmlSampleRaw>;
  /** Calls nvmlShutdown for every library initialised so far. */
  nvmlShutdown(): void;
}

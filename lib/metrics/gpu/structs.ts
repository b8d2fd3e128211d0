/**
 * Codecs of the structs in bpf/gpu.h and bpf/thermal.h: the number-valued variants generated
 * from the objects' BTF by scripts/gen-types.ts (lib/ebpf/generated), so each struct is
 * described once, in its header. test/metrics/gpu-structs.test.ts checks them against BTF.
 * @module
 * @internal
 */
import {
  CpuCurrentN,
  CpuResidencyN,
  CpuStateKeyN,
  GpuLayouts,
  GpuProcStatsN,
  GpuProgStatsN,
  ThermalConfigN,
  ThermalEventN,
  ThermalLayouts,
  ThermalProgStatsN,
  ThermalZoneStateN,
} from '../../ebpf/generated/index.js';

/** Sizes and offsets of the structs the GPU and thermal readers decode, by C name. */
export const GPU_STRUCT_LAYOUTS: Record<string, { size: number; offsets: Record<string, number> }> = Object.fromEntries(
  Object.entries({ ...GpuLayouts, ...ThermalLayouts }).map(([name, l]) => [name, { size: l.size, offsets: l.fields }]),
);

/** struct gpu_proc_stats (gpu.h). */
export const gpuProcStats = GpuProcStatsN;
/** struct gpu_prog_stats (gpu.h). */
export const gpuProgStats = GpuProgStatsN;
/** struct thermal_event (thermal.h). */
export const thermalEvent = ThermalEventN;
/** struct thermal_zone_state (thermal.h). */
export const thermalZoneState = ThermalZoneStateN;
/** struct cpu_state_key (thermal.h). */
export const cpuStateKey = CpuStateKeyN;
/** struct cpu_residency (thermal.h). */
export const cpuResidency = CpuResidencyN;
/** struct cpu_current (thermal.h). */
export const cpuCurrent = CpuCurrentN;
/** struct thermal_config (thermal.h). */
export const thermalConfig = ThermalConfigN;
/** struct thermal_prog_stats (thermal.h). */
export const thermalProgStats = ThermalProgStatsN;

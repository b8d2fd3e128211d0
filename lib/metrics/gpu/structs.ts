/**
 * Codecs of the structs in bpf/gpu.h and bpf/thermal.h. test/metrics/gpu-structs.test.ts
 * checks every size and offset here against the BTF of the compiled objects.
 * @module
 * @internal
 */
import { cstring, field, i32, struct, u32, u64n, type FieldSpec } from '../../ebpf/codec.js';

/** Sizes and offsets of the mirrored structs, by C name (for the BTF layout test). */
export const GPU_STRUCT_LAYOUTS: Record<string, { size: number; offsets: Record<string, number> }> = {};

function def<F extends Record<string, FieldSpec>>(name: string, fields: F, size: number) {
  GPU_STRUCT_LAYOUTS[name] = { size, offsets: Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.offset])) };
  return struct(fields, size);
}

const GPU_U64 = [
  'launches',
  'alloc_count',
  'alloc_bytes',
  'alloc_failed',
  'free_count',
  'free_bytes',
  'free_untracked',
  'htod_count',
  'htod_bytes',
  'dtoh_count',
  'dtoh_bytes',
  'dtod_count',
  'dtod_bytes',
  'sync_count',
  'sync_ns',
  'sync_max_ns',
  'fence_emitted',
  'fence_signaled',
  'fence_latency_ns',
  'fence_latency_max_ns',
] as const;

/** struct gpu_proc_stats (gpu.h). */
export const gpuProcStats = def(
  'gpu_proc_stats',
  {
    ...(Object.fromEntries(GPU_U64.map((n, i) => [n, field(u64n, i * 8)])) as Record<(typeof GPU_U64)[number], FieldSpec<number>>),
    comm: field(cstring(16), GPU_U64.length * 8),
  },
  GPU_U64.length * 8 + 16,
);

/** struct gpu_prog_stats (gpu.h). */
export const gpuProgStats = def('gpu_prog_stats', { alloc_map_full: field(u64n, 0), proc_map_full: field(u64n, 8), fence_map_full: field(u64n, 16) }, 24);

/** struct thermal_event (thermal.h). */
export const thermalEvent = def(
  'thermal_event',
  {
    ts_ns: field(u64n, 0),
    kind: field(u32, 8),
    zone_id: field(i32, 12),
    temp_prev: field(i32, 16),
    temp: field(i32, 20),
    trip: field(i32, 24),
    trip_type: field(u32, 28),
    zone: field(cstring(20), 32),
  },
  56,
);

/** struct thermal_zone_state (thermal.h). */
export const thermalZoneState = def(
  'thermal_zone_state',
  {
    temp: field(i32, 0),
    temp_prev: field(i32, 4),
    updates: field(u64n, 8),
    trips: field(u64n, 16),
    last_ts_ns: field(u64n, 24),
    last_trip: field(i32, 32),
    last_trip_type: field(u32, 36),
    zone: field(cstring(20), 40),
    pad: field(u32, 60),
  },
  64,
);

/** struct cpu_state_key (thermal.h). */
export const cpuStateKey = def('cpu_state_key', { cpu: field(u32, 0), state: field(u32, 4) }, 8);

/** struct cpu_residency (thermal.h). */
export const cpuResidency = def('cpu_residency', { ns: field(u64n, 0), count: field(u64n, 8) }, 16);

/** struct cpu_current (thermal.h). */
export const cpuCurrent = def(
  'cpu_current',
  { freq_since_ns: field(u64n, 0), freq_khz: field(u32, 8), idle_state: field(u32, 12), idle_since_ns: field(u64n, 16) },
  24,
);

/** struct thermal_config (thermal.h). */
export const thermalConfig = def('thermal_config', { emit_events: field(u32, 0), pad: field(u32, 4) }, 8);

/** struct thermal_prog_stats (thermal.h). */
export const thermalProgStats = def(
  'thermal_prog_stats',
  { events_dropped: field(u64n, 0), freq_events: field(u64n, 8), idle_events: field(u64n, 16), temp_events: field(u64n, 24), trip_events: field(u64n, 32) },
  40,
);

/**
 * Flat, addressable values for alert rules: every number of a `gpu`, `thermal` or `power`
 * snapshot as `{ name, labels, value }` with a stable name (Prometheus style, unit suffix) and
 * identifying labels, e.g. `gpu_memory_used_ratio{device="0"}` or
 * `thermal_zone_trip_margin_celsius{zone="x86_pkg_temp",trip="0",trip_type="passive"}`.
 * @module
 */
import type { GpuSnapshot } from './schema.js';

/** One addressable value of a snapshot. */
export interface MetricValue {
  /** Stable metric name, snake_case with a unit suffix. */
  name: string;
  /** Identifying labels (device, pid, zone, sensor, ...). */
  labels: Record<string, string>;
  value: number;
}

/** Pushes `value` when it is a finite number (null/undefined: the device does not report it). */
export function pushValue(out: MetricValue[], name: string, labels: Record<string, string>, value: number | null | undefined): void {
  if (typeof value === 'number' && Number.isFinite(value)) out.push({ name, labels, value });
}

/** Every value of a `gpu` snapshot. */
export function gpuValues(s: GpuSnapshot): MetricValue[] {
  const out: MetricValue[] = [];
  for (const d of s.nvml.devices) {
    const l = { device: String(d.index), uuid: d.uuid, name: d.name };
    pushValue(out, 'gpu_utilization_percent', l, d.utilizationGpuPercent);
    pushValue(out, 'gpu_memory_utilization_percent', l, d.utilizationMemoryPercent);
    pushValue(out, 'gpu_memory_used_bytes', l, d.memoryUsedBytes);
    pushValue(out, 'gpu_memory_total_bytes', l, d.memoryTotalBytes);
    if (d.memoryUsedBytes !== null && d.memoryTotalBytes) pushValue(out, 'gpu_memory_used_ratio', l, d.memoryUsedBytes / d.memoryTotalBytes);
    pushValue(out, 'gpu_temperature_celsius', l, d.temperatureC);
    pushValue(out, 'gpu_power_watts', l, d.powerWatts);
    pushValue(out, 'gpu_power_limit_watts', l, d.powerLimitWatts);
    pushValue(out, 'gpu_clock_graphics_mhz', l, d.clocksMHz.graphics);
    pushValue(out, 'gpu_clock_sm_mhz', l, d.clocksMHz.sm);
    pushValue(out, 'gpu_clock_memory_mhz', l, d.clocksMHz.memory);
    for (const p of d.processes ?? []) pushValue(out, 'gpu_device_process_memory_bytes', { ...l, pid: String(p.pid) }, p.usedMemoryBytes);
  }
  for (const p of s.processes) {
    const l = { pid: String(p.pid), comm: p.comm };
    pushValue(out, 'gpu_process_kernel_launches_total', l, p.launches);
    pushValue(out, 'gpu_process_allocations_total', l, p.allocations);
    pushValue(out, 'gpu_process_allocated_bytes_total', l, p.allocatedBytes);
    pushValue(out, 'gpu_process_failed_allocations_total', l, p.failedAllocations);
    pushValue(out, 'gpu_process_freed_bytes_total', l, p.freedBytes);
    pushValue(out, 'gpu_process_outstanding_bytes', l, p.outstandingBytes);
    pushValue(out, 'gpu_process_htod_copies_total', l, p.htodCopies);
    pushValue(out, 'gpu_process_htod_bytes_total', l, p.htodBytes);
    pushValue(out, 'gpu_process_dtoh_copies_total', l, p.dtohCopies);
    pushValue(out, 'gpu_process_dtoh_bytes_total', l, p.dtohBytes);
    pushValue(out, 'gpu_process_dtod_bytes_total', l, p.dtodBytes);
    pushValue(out, 'gpu_process_syncs_total', l, p.syncs);
    pushValue(out, 'gpu_process_sync_seconds_total', l, p.syncSeconds);
    pushValue(out, 'gpu_process_fences_emitted_total', l, p.fencesEmitted);
    pushValue(out, 'gpu_process_fence_latency_seconds_total', l, p.fenceLatencySeconds);
    pushValue(out, 'gpu_process_nvml_memory_bytes', l, p.nvmlMemoryBytes);
  }
  return out;
}

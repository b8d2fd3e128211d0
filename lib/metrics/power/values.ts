/**
 * Flat values of a `power` snapshot for alert rules (see gpu/values.ts for the shape).
 * @module
 */
import { pushValue, type MetricValue } from '../gpu/values.js';
import type { PowerSnapshot } from './schema.js';

/** Every value of a `power` snapshot. */
export function powerValues(s: PowerSnapshot): MetricValue[] {
  const out: MetricValue[] = [];
  pushValue(out, 'power_package_watts', {}, s.packageWatts);
  for (const z of s.rapl) {
    const l = { zone: z.zone, name: z.name };
    pushValue(out, 'power_rapl_watts', l, z.watts);
    pushValue(out, 'power_rapl_energy_joules_total', l, z.energyJoules);
  }
  for (const h of s.hwmonPower) pushValue(out, 'power_hwmon_watts', { chip: h.chip, sensor: h.sensor, label: h.label }, h.watts);
  for (const p of s.processes) {
    const l = { pid: String(p.pid), comm: p.comm };
    pushValue(out, 'process_power_watts', l, p.watts);
    pushValue(out, 'process_energy_joules_total', l, p.joules);
    pushValue(out, 'process_cpu_share_ratio', l, p.share);
  }
  return out;
}

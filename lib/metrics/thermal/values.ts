/**
 * Flat values of a `thermal` snapshot for alert rules (see gpu/values.ts for the shape).
 * @module
 */
import { pushValue, type MetricValue } from '../gpu/values.js';
import type { ThermalSnapshot } from './schema.js';

const HWMON_NAMES = {
  temperature: 'hwmon_temperature_celsius',
  fan: 'hwmon_fan_rpm',
  power: 'hwmon_power_watts',
  voltage: 'hwmon_voltage_volts',
  current: 'hwmon_current_amperes',
  energy: 'hwmon_energy_joules',
  humidity: 'hwmon_humidity_percent',
} as const;

/**
 * Every value of a `thermal` snapshot. Besides temperatures, each trip point yields
 * `thermal_zone_trip_margin_celsius` (trip − current): a rule "margin < 0" fires when a zone is
 * over its trip point.
 */
export function thermalValues(s: ThermalSnapshot): MetricValue[] {
  const out: MetricValue[] = [];
  for (const z of s.zones) {
    const l = { zone: z.type, zone_id: String(z.id) };
    pushValue(out, 'thermal_zone_temperature_celsius', l, z.temperatureC);
    for (const t of z.trips) {
      const tl = { ...l, trip: String(t.index), trip_type: t.type };
      pushValue(out, 'thermal_zone_trip_celsius', tl, t.temperatureC);
      if (t.temperatureC !== null && z.temperatureC !== null) pushValue(out, 'thermal_zone_trip_margin_celsius', tl, t.temperatureC - z.temperatureC);
    }
    pushValue(out, 'thermal_zone_trips_crossed_total', l, z.tripsCrossed);
  }
  for (const c of s.coolingDevices) {
    pushValue(out, 'thermal_cooling_state', { device: String(c.id), type: c.type }, c.curState);
    pushValue(out, 'thermal_cooling_max_state', { device: String(c.id), type: c.type }, c.maxState);
  }
  for (const chip of s.hwmon) {
    for (const x of chip.sensors) {
      const l = { chip: chip.name, sensor: x.sensor, label: x.label };
      pushValue(out, HWMON_NAMES[x.kind], l, x.value);
      if (x.kind === 'temperature' && x.value !== null && x.crit !== undefined) pushValue(out, 'hwmon_temperature_crit_margin_celsius', l, x.crit - x.value);
      if (x.alarm !== undefined) pushValue(out, 'hwmon_alarm', l, x.alarm ? 1 : 0);
    }
  }
  for (const c of s.cpus) {
    pushValue(out, 'cpu_frequency_khz', { cpu: String(c.cpu) }, c.currentKhz);
    for (const r of c.frequency) pushValue(out, 'cpu_frequency_residency_seconds_total', { cpu: String(c.cpu), khz: String(r.state) }, r.seconds);
    for (const r of c.idle) pushValue(out, 'cpu_idle_residency_seconds_total', { cpu: String(c.cpu), state: String(r.state) }, r.seconds);
  }
  return out;
}

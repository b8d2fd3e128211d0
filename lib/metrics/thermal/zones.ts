/**
 * Thermal zones and cooling devices from `/sys/class/thermal` (drivers/thermal/thermal_sysfs.c).
 * @module
 */
import { join } from 'node:path';
import { listDir, readAttr, readInt, type SysfsLayoutCache } from './sysfs-util.js';

/** A trip point of a thermal zone. */
export interface TripPoint {
  /** Index N of `trip_point_N_*`. */
  index: number;
  /** `active`, `passive`, `hot` or `critical`. */
  type: string;
  /** Trip temperature in °C, null when unreadable. */
  temperatureC: number | null;
  /** Hysteresis in °C, null when the zone has none. */
  hysteresisC: number | null;
}

/** One thermal zone. */
export interface ThermalZone {
  /** Zone number N of `thermal_zoneN` (the `id` of the thermal tracepoints). */
  id: number;
  /** Directory name, e.g. `thermal_zone0`. */
  name: string;
  /** What the zone measures, e.g. `x86_pkg_temp`, `acpitz`, `cpu-thermal`. */
  type: string;
  /** Current temperature in °C, null when the sensor cannot be read. */
  temperatureC: number | null;
  /** `enabled` or `disabled`, null when the kernel does not expose it. */
  mode: string | null;
  /** Governor, e.g. `step_wise`. */
  policy: string | null;
  /** Trip points, by index. */
  trips: TripPoint[];
}

/** A cooling device (fan, CPU frequency limit, ...). */
export interface CoolingDevice {
  /** Device number N of `cooling_deviceN`. */
  id: number;
  /** e.g. `Processor`, `Fan`, `intel_powerclamp`. */
  type: string;
  /** Current and highest cooling state (0 = no cooling). */
  curState: number | null;
  maxState: number | null;
}

/** Options of the sysfs readers. */
export interface SysfsOptions {
  /** Root of sysfs (default `/sys`); tests point it at fixture trees. */
  sysfsRoot?: string;
  /** Directory listings to reuse (readers keep one; without it every call lists afresh). */
  layout?: SysfsLayoutCache;
}

const milli = (v: number | null): number | null => (v === null ? null : v / 1000);

/** Reads every thermal zone under `<sysfsRoot>/class/thermal`. [] when there is none. */
export async function readThermalZones(options: SysfsOptions = {}): Promise<ThermalZone[]> {
  const base = join(options.sysfsRoot ?? '/sys', 'class', 'thermal');
  const names = (await listDir(base, options.layout)).filter((n) => /^thermal_zone\d+$/.test(n));
  return Promise.all(
    names.map(async (name): Promise<ThermalZone> => {
      const dir = join(base, name);
      const files = await listDir(dir, options.layout);
      const tripIdx = [
        ...new Set(files.map((f) => /^trip_point_(\d+)_type$/.exec(f)?.[1]).filter((x): x is string => x !== undefined)),
      ]
        .map(Number)
        .sort((a, b) => a - b);
      const [type, temp, mode, policy, trips] = await Promise.all([
        readAttr(join(dir, 'type')),
        readInt(join(dir, 'temp')),
        readAttr(join(dir, 'mode')),
        readAttr(join(dir, 'policy')),
        Promise.all(
          tripIdx.map(async (i): Promise<TripPoint> => {
            const [t, tt, hy] = await Promise.all([
              readAttr(join(dir, `trip_point_${i}_type`)),
              readInt(join(dir, `trip_point_${i}_temp`)),
              readInt(join(dir, `trip_point_${i}_hyst`)),
            ]);
            return { index: i, type: t ?? 'unknown', temperatureC: milli(tt), hysteresisC: milli(hy) };
          }),
        ),
      ]);
      return { id: Number(name.slice('thermal_zone'.length)), name, type: type ?? 'unknown', temperatureC: milli(temp), mode, policy, trips };
    }),
  );
}

/** Reads every cooling device under `<sysfsRoot>/class/thermal`. */
export async function readCoolingDevices(options: SysfsOptions = {}): Promise<CoolingDevice[]> {
  const base = join(options.sysfsRoot ?? '/sys', 'class', 'thermal');
  const names = (await listDir(base, options.layout)).filter((n) => /^cooling_device\d+$/.test(n));
  return Promise.all(
    names.map(async (name) => {
      const dir = join(base, name);
      const [type, cur, max] = await Promise.all([readAttr(join(dir, 'type')), readInt(join(dir, 'cur_state')), readInt(join(dir, 'max_state'))]);
      return { id: Number(name.slice('cooling_device'.length)), type: type ?? 'unknown', curState: cur, maxState: max };
    }),
  );
}

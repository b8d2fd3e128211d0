/**
 * hwmon sensors from `/sys/class/hwmon` (Documentation/hwmon/sysfs-interface.rst): temperatures,
 * fans, power, voltage, current, energy and humidity, with their labels, in SI units.
 * @module
 */
import { join } from 'node:path';
import { listDir, readAttr, readInt, resolveLink, type SysfsLayoutCache } from './sysfs-util.js';
import type { SysfsOptions } from './zones.js';

/** Kinds of hwmon sensors. */
export type HwmonKind = 'temperature' | 'fan' | 'power' | 'voltage' | 'current' | 'energy' | 'humidity';

/** One hwmon sensor, values in SI units. */
export interface HwmonSensor {
  /** Kind of quantity. */
  kind: HwmonKind;
  /** Attribute prefix, e.g. `temp1`, `fan2`, `in0`, `power1`. */
  sensor: string;
  /** The `<sensor>_label` file, or the attribute prefix when the driver gives no label. */
  label: string;
  /** °C, RPM, W, V, A, J or % — null when the input cannot be read. */
  value: number | null;
  /** Limits where the driver exposes them (same unit as `value`). */
  min?: number;
  max?: number;
  crit?: number;
  /** True when the chip raised this sensor's alarm. */
  alarm?: boolean;
}

/** One hwmon chip with its sensors. */
export interface HwmonChip {
  /** Directory name, e.g. `hwmon3` (not stable across boots). */
  chip: string;
  /** Driver name from `name`, e.g. `coretemp`, `k10temp`, `nvme`, `amdgpu`. */
  name: string;
  /** Resolved device path (stable across boots), null when the chip has no `device` link. */
  device: string | null;
  sensors: HwmonSensor[];
}

// prefix -> [kind, divisor to SI, input attribute names in order of preference]
const KINDS: Record<string, [HwmonKind, number, string[]]> = {
  temp: ['temperature', 1000, ['input']],
  fan: ['fan', 1, ['input']],
  power: ['power', 1_000_000, ['input', 'average']],
  in: ['voltage', 1000, ['input']],
  curr: ['current', 1000, ['input']],
  energy: ['energy', 1_000_000, ['input']],
  humidity: ['humidity', 1000, ['input']],
};

/** Reads every hwmon chip under `<sysfsRoot>/class/hwmon`. [] when there is none. */
export async function readHwmon(options: SysfsOptions = {}): Promise<HwmonChip[]> {
  const base = join(options.sysfsRoot ?? '/sys', 'class', 'hwmon');
  const chips = (await listDir(base, options.layout)).filter((n) => /^hwmon\d+$/.test(n));
  return Promise.all(chips.map((chip) => readChip(join(base, chip), chip, options.layout)));
}

async function readChip(dir: string, chip: string, layout: SysfsLayoutCache | undefined): Promise<HwmonChip> {
  // Old drivers keep name and attributes in device/ instead of the hwmon directory.
  let attrDir = dir;
  let files = await listDir(dir, layout);
  if (!files.some((f) => /_input$|_average$/.test(f))) {
    const devFiles = await listDir(join(dir, 'device'), layout);
    if (devFiles.some((f) => /_input$|_average$/.test(f))) {
      attrDir = join(dir, 'device');
      files = devFiles;
    }
  }
  const name = (await readAttr(join(dir, 'name'))) ?? (await readAttr(join(dir, 'device', 'name'))) ?? chip;
  const device = await resolveLink(join(dir, 'device'), layout);
  const fileSet = new Set(files);
  const sensors = new Map<string, [string, number]>();
  for (const f of files) {
    const m = /^([a-z]+)(\d+)_(input|average)$/.exec(f);
    if (!m || !(m[1]! in KINDS)) continue;
    sensors.set(`${m[1]}${m[2]}`, [m[1]!, Number(m[2])]);
  }
  const list = [...sensors.entries()].sort((a, b) => (a[1][0] === b[1][0] ? a[1][1] - b[1][1] : a[1][0].localeCompare(b[1][0])));
  const out = await Promise.all(
    list.map(async ([sensor, [prefix]]): Promise<HwmonSensor> => {
      const [kind, div, inputs] = KINDS[prefix]!;
      const inputName = inputs.find((i) => fileSet.has(`${sensor}_${i}`)) ?? inputs[0]!;
      const scale = (v: number | null): number | undefined => (v === null ? undefined : v / div);
      const [raw, label, min, max, crit, alarm] = await Promise.all([
        readInt(join(attrDir, `${sensor}_${inputName}`)),
        readAttr(join(attrDir, `${sensor}_label`)),
        fileSet.has(`${sensor}_min`) ? readInt(join(attrDir, `${sensor}_min`)) : null,
        fileSet.has(`${sensor}_max`) ? readInt(join(attrDir, `${sensor}_max`)) : null,
        fileSet.has(`${sensor}_crit`) ? readInt(join(attrDir, `${sensor}_crit`)) : null,
        fileSet.has(`${sensor}_alarm`) ? readInt(join(attrDir, `${sensor}_alarm`)) : null,
      ]);
      const s: HwmonSensor = { kind, sensor, label: label || sensor, value: raw === null ? null : raw / div };
      const mn = scale(min), mx = scale(max), cr = scale(crit);
      if (mn !== undefined) s.min = mn;
      if (mx !== undefined) s.max = mx;
      if (cr !== undefined) s.crit = cr;
      if (alarm !== null) s.alarm = alarm !== 0;
      return s;
    }),
  );
  return { chip, name, device, sensors: out };
}

/**
 * RAPL energy counters from the powercap framework (`/sys/class/powercap/intel-rapl:*`, also
 * used by AMD on recent kernels) turned into watts. The counters are cumulative microjoules
 * that wrap at `max_energy_range_uj`; a wrap between two samples is detected (counter went
 * down) and corrected. More than one wrap between samples cannot be seen: sample at least
 * every `max_energy_range_uj / max power` seconds (tens of minutes on common CPUs).
 * @module
 */
import { join } from 'node:path';
import { listDir, readAttr, readInt } from '../thermal/sysfs-util.js';
import type { SysfsOptions } from '../thermal/zones.js';

/** One powercap zone as found in sysfs. */
export interface RaplZone {
  /** Directory name, e.g. `intel-rapl:0`, `intel-rapl:0:1`, `intel-rapl-mmio:0`. */
  zone: string;
  /** `package-0`, `core`, `uncore`, `dram`, `psys`, ... */
  name: string;
  /** Parent zone for sub-zones (`intel-rapl:0` for `intel-rapl:0:1`), null for top-level zones. */
  parent: string | null;
  /** Counter value, µJ (null when unreadable: energy_uj is root-only on patched kernels). */
  energyUj: number | null;
  /** Value at which the counter wraps, µJ. */
  maxEnergyRangeUj: number | null;
}

/** Reads every powercap zone that has an energy counter. [] when there is none. */
export async function readRaplZones(options: SysfsOptions = {}): Promise<RaplZone[]> {
  const base = join(options.sysfsRoot ?? '/sys', 'class', 'powercap');
  const names = (await listDir(base, options.layout)).filter((n) => /^[a-z-]+(:\d+)+$/.test(n));
  const zones = await Promise.all(
    names.map(async (zone): Promise<RaplZone | null> => {
      const dir = join(base, zone);
      const [name, energy, max] = await Promise.all([readAttr(join(dir, 'name')), readInt(join(dir, 'energy_uj')), readInt(join(dir, 'max_energy_range_uj'))]);
      if (energy === null && max === null) return null;
      const parts = zone.split(':');
      return { zone, name: name ?? zone, parent: parts.length > 2 ? parts.slice(0, -1).join(':') : null, energyUj: energy, maxEnergyRangeUj: max };
    }),
  );
  return zones.filter((z): z is RaplZone => z !== null);
}

/** Energy counter delta with wrap-around correction, µJ. */
export function energyDeltaUj(previous: number, current: number, maxEnergyRangeUj: number | null): number {
  if (current >= previous) return current - previous;
  // Wrapped: the counter ran up to max_energy_range_uj and restarted from 0.
  if (maxEnergyRangeUj === null || maxEnergyRangeUj < previous) return current;
  return maxEnergyRangeUj - previous + current;
}

/** Power of one zone between two samples. */
export interface RaplPower {
  zone: string;
  name: string;
  parent: string | null;
  /** Average power since the previous sample, W; null on the first sample or when unreadable. */
  watts: number | null;
  /** Energy since the sampler's first sample, J (wrap-corrected). */
  energyJoules: number;
  /** Wraps seen so far. */
  wraps: number;
}

interface ZoneState {
  energyUj: number;
  tNs: bigint;
  totalUj: number;
  wraps: number;
}

/**
 * Turns RAPL counters into watts: each `sample()` reads every zone and reports the average
 * power since the previous sample. Holds only the previous counter values.
 */
export class RaplSampler {
  readonly #options: SysfsOptions;
  readonly #state = new Map<string, ZoneState>();

  /** Creates a sampler; nothing is read until the first sample(). @param options sysfs root (default `/sys`). */
  constructor(options: SysfsOptions = {}) {
    this.#options = options;
  }

  /**
   * Reads the counters. `nowNs` (monotonic nanoseconds, default `process.hrtime.bigint()`)
   * lets callers (and tests) pin the sample time.
   */
  async sample(nowNs: bigint = process.hrtime.bigint()): Promise<RaplPower[]> {
    const zones = await readRaplZones(this.#options);
    return zones.map((z) => {
      const prev = this.#state.get(z.zone);
      if (z.energyUj === null) return { zone: z.zone, name: z.name, parent: z.parent, watts: null, energyJoules: (prev?.totalUj ?? 0) / 1e6, wraps: prev?.wraps ?? 0 };
      if (!prev) {
        this.#state.set(z.zone, { energyUj: z.energyUj, tNs: nowNs, totalUj: 0, wraps: 0 });
        return { zone: z.zone, name: z.name, parent: z.parent, watts: null, energyJoules: 0, wraps: 0 };
      }
      const delta = energyDeltaUj(prev.energyUj, z.energyUj, z.maxEnergyRangeUj);
      const wrapped = z.energyUj < prev.energyUj;
      const dtNs = Number(nowNs - prev.tNs);
      const next: ZoneState = { energyUj: z.energyUj, tNs: nowNs, totalUj: prev.totalUj + delta, wraps: prev.wraps + (wrapped ? 1 : 0) };
      this.#state.set(z.zone, next);
      return {
        zone: z.zone,
        name: z.name,
        parent: z.parent,
        // µJ / ns * 1e3 = W
        watts: dtNs > 0 ? (delta * 1e3) / dtNs : null,
        energyJoules: next.totalUj / 1e6,
        wraps: next.wraps,
      };
    });
  }

  /** Forgets previous samples. */
  reset(): void {
    this.#state.clear();
  }
}

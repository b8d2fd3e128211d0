import { afterEach, describe, expect, it } from 'vitest';
import { energyDeltaUj, RaplSampler, readRaplZones } from '../../lib/metrics/power/index.js';
import { emptySysfs, laptopSysfs, type SysfsFixture } from '../fixtures/sysfs/tree.js';

// No powercap on this VM: RAPL is checked on fixture trees whose counters the test moves.
let fx: SysfsFixture | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

const MAX = 262143328850;
const S = 1_000_000_000n; // 1 s in ns

describe('RAPL powercap', () => {
  it('lists zones with counters, parents and names (not the control-type directory)', async () => {
    fx = laptopSysfs();
    const zones = await readRaplZones({ sysfsRoot: fx.root });
    expect(zones.map((z) => [z.zone, z.name, z.parent])).toEqual([
      ['intel-rapl:0', 'package-0', null],
      ['intel-rapl:0:0', 'core', 'intel-rapl:0'],
      ['intel-rapl:0:1', 'uncore', 'intel-rapl:0'],
      ['intel-rapl:1', 'dram', null],
    ]);
    expect(zones[0]!.maxEnergyRangeUj).toBe(MAX);
  });

  it('turns counter deltas into watts', async () => {
    fx = laptopSysfs();
    const s = new RaplSampler({ sysfsRoot: fx.root });
    const first = await s.sample(10n * S);
    expect(first.every((z) => z.watts === null && z.energyJoules === 0)).toBe(true);
    fx.write('class/powercap/intel-rapl:0/energy_uj', 1_000_000 + 17_500_000); // 17.5 J
    fx.write('class/powercap/intel-rapl:0:0/energy_uj', 500_000 + 9_000_000);
    const second = await s.sample(10n * S + S / 2n); // over 0.5 s
    const pkg = second.find((z) => z.name === 'package-0')!;
    expect(pkg.watts).toBeCloseTo(35, 9);
    expect(pkg.energyJoules).toBeCloseTo(17.5, 9);
    expect(second.find((z) => z.name === 'core')!.watts).toBeCloseTo(18, 9);
    expect(second.find((z) => z.name === 'uncore')!.watts).toBe(0);
  });

  it('handles the counter wrapping at max_energy_range_uj', async () => {
    fx = laptopSysfs();
    const s = new RaplSampler({ sysfsRoot: fx.root });
    await s.sample(0n);
    // dram sits 328850 µJ below the wrap; it advances 2,000,000 µJ and wraps
    const after = (262143000000 + 2_000_000) - MAX;
    fx.write('class/powercap/intel-rapl:1/energy_uj', after);
    const r = await s.sample(2n * S);
    const dram = r.find((z) => z.name === 'dram')!;
    expect(dram.wraps).toBe(1);
    expect(dram.energyJoules).toBeCloseTo(2, 9);
    expect(dram.watts).toBeCloseTo(1, 9);
    expect(energyDeltaUj(MAX - 10, 5, MAX)).toBe(15);
    expect(energyDeltaUj(100, 250, MAX)).toBe(150);
  });

  it('an empty tree gives no zones', async () => {
    fx = emptySysfs();
    expect(await readRaplZones({ sysfsRoot: fx.root })).toEqual([]);
    expect(await new RaplSampler({ sysfsRoot: fx.root }).sample()).toEqual([]);
  });
});

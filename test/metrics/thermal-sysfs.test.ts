import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { readCoolingDevices, readHwmon, readThermalZones, SysfsLayoutCache } from '../../lib/metrics/thermal/index.js';
import { emptySysfs, laptopSysfs, type SysfsFixture } from '../fixtures/sysfs/tree.js';

// This VM has no thermal zones and no hwmon chips: the readers are checked on fixture trees
// shaped like real hardware, and on the real /sys only for "empty, no error".
let fx: SysfsFixture | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

describe('thermal zones (sysfs)', () => {
  it('reads types, temperatures and trip points in °C, in zone order', async () => {
    fx = laptopSysfs();
    const zones = await readThermalZones({ sysfsRoot: fx.root });
    expect(zones.map((z) => z.name)).toEqual(['thermal_zone0', 'thermal_zone2', 'thermal_zone10']);
    const pkg = zones.find((z) => z.type === 'x86_pkg_temp')!;
    expect(pkg.id).toBe(10);
    expect(pkg.temperatureC).toBe(88.5);
    expect(pkg.trips).toEqual([
      { index: 0, type: 'passive', temperatureC: 85, hysteresisC: 2 },
      { index: 1, type: 'critical', temperatureC: 100, hysteresisC: null },
    ]);
    const acpi = zones[0]!;
    expect(acpi).toMatchObject({ type: 'acpitz', temperatureC: 47, mode: 'enabled', policy: 'step_wise' });
    // a zone whose sensor cannot be read reports null, not an error
    expect(zones[1]).toMatchObject({ type: 'iwlwifi_1', temperatureC: null, trips: [] });
  });

  it('follows changes between reads', async () => {
    fx = laptopSysfs();
    fx.write('class/thermal/thermal_zone0/temp', 61250);
    const zones = await readThermalZones({ sysfsRoot: fx.root });
    expect(zones[0]!.temperatureC).toBe(61.25);
  });

  it('with a layout cache, lists directories once per TTL and reads values every time', async () => {
    fx = laptopSysfs();
    const layout = new SysfsLayoutCache(300);
    const opts = { sysfsRoot: fx.root, layout };
    expect((await readThermalZones(opts)).map((z) => z.name)).toEqual(['thermal_zone0', 'thermal_zone2', 'thermal_zone10']);
    fx.write('class/thermal/thermal_zone0/temp', 52000);
    fx.write('class/thermal/thermal_zone7/type', 'new_zone');
    fx.write('class/thermal/thermal_zone7/temp', 30000);
    const cached = await readThermalZones(opts);
    expect(cached[0]!.temperatureC).toBe(52); // values: fresh
    expect(cached.map((z) => z.name)).not.toContain('thermal_zone7'); // listing: reused
    expect((await readThermalZones({ sysfsRoot: fx.root })).map((z) => z.name)).toContain('thermal_zone7'); // no cache: fresh
    await new Promise((r) => setTimeout(r, 350));
    const later = await readThermalZones(opts);
    expect(later.find((z) => z.name === 'thermal_zone7')).toMatchObject({ type: 'new_zone', temperatureC: 30 });
    // hwmon through the same cache: chips, sensors and the device link resolve as without it
    expect(await readHwmon(opts)).toEqual(await readHwmon({ sysfsRoot: fx.root }));
    expect(await readCoolingDevices(opts)).toEqual(await readCoolingDevices({ sysfsRoot: fx.root }));
  });

  it('reads cooling devices', async () => {
    fx = laptopSysfs();
    expect(await readCoolingDevices({ sysfsRoot: fx.root })).toEqual([
      { id: 0, type: 'Processor', curState: 0, maxState: 10 },
      { id: 1, type: 'Fan', curState: 1, maxState: 1 },
    ]);
  });

  it('an empty tree and this host give empty lists', async () => {
    fx = emptySysfs();
    expect(await readThermalZones({ sysfsRoot: fx.root })).toEqual([]);
    expect(await readHwmon({ sysfsRoot: fx.root })).toEqual([]);
    const real = await readThermalZones();
    const expected = existsSync('/sys/class/thermal') ? readdirSync('/sys/class/thermal').filter((n) => n.startsWith('thermal_zone')).length : 0;
    expect(real.length).toBe(expected);
  });
});

describe('hwmon (sysfs)', () => {
  it('reads every kind of sensor with labels, limits and alarms in SI units', async () => {
    fx = laptopSysfs();
    const chips = await readHwmon({ sysfsRoot: fx.root });
    expect(chips.map((c) => c.name)).toEqual(['coretemp', 'nvme', 'nct6798', 'w83627hf']);
    const core = chips[0]!;
    expect(core.device).toMatch(/devices\/platform\/coretemp\.0$/);
    expect(core.sensors).toEqual([
      { kind: 'temperature', sensor: 'temp1', label: 'Package id 0', value: 52, max: 100, crit: 100 },
      { kind: 'temperature', sensor: 'temp2', label: 'Core 0', value: 49 },
      { kind: 'temperature', sensor: 'temp10', label: 'Core 8', value: 50 },
    ]);
    // no label file: the attribute prefix is the label
    expect(chips[1]!.sensors.map((s) => [s.label, s.value])).toEqual([
      ['Composite', 38.85],
      ['temp2', 41.85],
    ]);
    const board = chips[2]!;
    const by = (k: string) => board.sensors.find((s) => s.kind === k)!;
    expect(by('fan')).toEqual({ kind: 'fan', sensor: 'fan1', label: 'fan1', value: 1234, min: 300, alarm: true });
    expect(by('voltage')).toMatchObject({ label: 'Vcore', value: 1.104 });
    expect(by('current')).toMatchObject({ value: 2.5 });
    expect(by('power')).toMatchObject({ label: 'PPT', value: 15.25 });
    expect(by('energy')).toMatchObject({ value: 123.456789 });
    expect(by('humidity')).toMatchObject({ value: 45.5 });
    // old-style chip with attributes under device/
    expect(chips[3]!.sensors).toEqual([{ kind: 'temperature', sensor: 'temp1', label: 'temp1', value: 30 }]);
  });
});

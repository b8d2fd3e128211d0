import { afterEach, describe, expect, it } from 'vitest';
import { getFamily } from '../../lib/metrics/family.js';
import { gpuValues, type GpuSnapshot } from '../../lib/metrics/gpu/index.js';
import { openPowerReader, PowerSnapshotSchema, powerValues } from '../../lib/metrics/power/index.js';
import { openThermalReader, thermalValues } from '../../lib/metrics/thermal/index.js';
import { emptySysfs, laptopSysfs, type SysfsFixture } from '../fixtures/sysfs/tree.js';

let fx: SysfsFixture[] = [];
afterEach(() => {
  for (const f of fx) f.close();
  fx = [];
});

describe('power reader', () => {
  it('RAPL package watts, hwmon power, and the per-process estimate on real /proc', async () => {
    const sys = laptopSysfs();
    fx.push(sys);
    const reader = openPowerReader({ sysfsRoot: sys.root, topProcesses: 5 });
    const first = PowerSnapshotSchema.parse(await reader.read());
    expect(first.packageWatts).toBeNull();
    expect(first.hwmonPower).toEqual([{ chip: 'nct6798', sensor: 'power1', label: 'PPT', watts: 15.25 }]);
    sys.write('class/powercap/intel-rapl:0/energy_uj', 1_000_000 + 5_000_000);
    // burn a little CPU in this process so it shows up with a share
    const until = Date.now() + 300;
    while (Date.now() < until) Math.sqrt(Math.random());
    const second = PowerSnapshotSchema.parse(await reader.read());
    expect(second.packageWatts).toBeGreaterThan(0);
    expect(second.processes.length).toBeLessThanOrEqual(5);
    const me = second.processes.find((p) => p.pid === process.pid);
    expect(me).toBeDefined();
    expect(me!.watts).toBeGreaterThan(0);
    expect(me!.watts!).toBeLessThanOrEqual(second.packageWatts! + 1e-9);
    expect(second.lacks).toEqual([]);
    const v = powerValues(second);
    expect(v.find((x) => x.name === 'power_package_watts')!.value).toBe(second.packageWatts);
    expect(v.find((x) => x.name === 'power_rapl_watts' && x.labels.name === 'dram')!.value).toBe(0);
    expect(v.some((x) => x.name === 'process_power_watts' && x.labels.pid === String(process.pid))).toBe(true);
    reader.close();
    await expect(reader.read()).rejects.toMatchObject({ code: 'ERR_BPF_CLOSED' });
  });

  it('on a host without RAPL (this VM) it says so', async () => {
    const sys = emptySysfs();
    fx.push(sys);
    const reader = openPowerReader({ sysfsRoot: sys.root, processes: false });
    const s = await reader.read();
    expect(s.rapl).toEqual([]);
    expect(s.lacks[0]).toMatch(/no RAPL powercap zones/);
    expect(powerValues(s)).toEqual([]);
    reader.close();
  });

  it('gpu, thermal and power families are registered', () => {
    expect(getFamily('gpu')?.backends).toEqual(['ebpf', 'nvml']);
    expect(getFamily('thermal')?.bpfObject).toBe('thermal.bpf.o');
    expect(getFamily('power')?.backends).toEqual(['sysfs']);
  });
});

describe('values() for alert rules', () => {
  it('thermal: temperatures, trip margins, hwmon sensors with stable names and labels', async () => {
    const sys = laptopSysfs();
    fx.push(sys);
    const r = await openThermalReader({ sysfsRoot: sys.root, backend: 'sysfs' });
    const v = thermalValues(await r.read());
    r.close();
    const find = (name: string, labels: Record<string, string>) => v.find((x) => x.name === name && Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    expect(find('thermal_zone_temperature_celsius', { zone: 'x86_pkg_temp' })!.value).toBe(88.5);
    // 88.5 °C is over the passive trip at 85 °C: margin below zero
    expect(find('thermal_zone_trip_margin_celsius', { zone: 'x86_pkg_temp', trip_type: 'passive' })!.value).toBe(-3.5);
    expect(find('thermal_zone_trip_margin_celsius', { zone: 'x86_pkg_temp', trip_type: 'critical' })!.value).toBe(11.5);
    expect(find('hwmon_temperature_celsius', { chip: 'coretemp', label: 'Package id 0' })!.value).toBe(52);
    expect(find('hwmon_fan_rpm', { chip: 'nct6798' })!.value).toBe(1234);
    expect(find('hwmon_alarm', { chip: 'nct6798', sensor: 'fan1' })!.value).toBe(1);
    expect(find('thermal_cooling_state', { type: 'Fan' })!.value).toBe(1);
    // no value for a sensor that cannot be read
    expect(v.some((x) => x.labels.zone === 'iwlwifi_1' && x.name === 'thermal_zone_temperature_celsius')).toBe(false);
    for (const x of v) expect(x.name).toMatch(/^[a-z][a-z0-9_]*$/);
  });

  it('gpu: memory ratio per device and per-process counters', () => {
    const snap: GpuSnapshot = {
      family: 'gpu',
      backend: 'ebpf',
      timestamp: 0,
      cuda: { library: null, pid: null, symbols: [], reason: '' },
      fences: { attached: false, reason: '' },
      lacks: [],
      nvml: {
        available: true,
        library: 'x',
        reason: '',
        driverVersion: null,
        devices: [
          {
            index: 0,
            name: 'G',
            uuid: 'GPU-1',
            utilizationGpuPercent: 50,
            utilizationMemoryPercent: null,
            memoryTotalBytes: 1000,
            memoryUsedBytes: 950,
            memoryFreeBytes: 50,
            temperatureC: 70,
            powerWatts: 100,
            powerLimitWatts: null,
            clocksMHz: { graphics: null, sm: null, memory: null, video: null },
            processes: null,
          },
        ],
      },
      processes: [
        {
          pid: 7, comm: 'train', launches: 3, allocations: 1, allocatedBytes: 10, failedAllocations: 0, frees: 0, freedBytes: 0, untrackedFrees: 0, outstandingBytes: 10,
          htodCopies: 0, htodBytes: 0, dtohCopies: 0, dtohBytes: 0, dtodCopies: 0, dtodBytes: 0, syncs: 0, syncSeconds: 0, syncMaxSeconds: 0,
          fencesEmitted: 0, fencesSignaled: 0, fenceLatencySeconds: 0, fenceLatencyMaxSeconds: 0, nvmlMemoryBytes: null,
        },
      ],
    };
    const v = gpuValues(snap);
    expect(v.find((x) => x.name === 'gpu_memory_used_ratio')).toEqual({ name: 'gpu_memory_used_ratio', labels: { device: '0', uuid: 'GPU-1', name: 'G' }, value: 0.95 });
    expect(v.find((x) => x.name === 'gpu_process_kernel_launches_total')!.labels).toEqual({ pid: '7', comm: 'train' });
    expect(v.some((x) => x.name === 'gpu_memory_utilization_percent')).toBe(false); // null: not reported
  });
});

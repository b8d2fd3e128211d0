import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { numPossibleCpus, u32 } from '../../lib/ebpf/index.js';
import { cpuResidency, cpuStateKey, thermalConfig, thermalProgStats } from '../../lib/metrics/gpu/structs.js';
import { openThermalReader, thermalMapSizes, ThermalSnapshotSchema, type ThermalReader } from '../../lib/metrics/thermal/index.js';
import { laptopSysfs, type SysfsFixture } from '../fixtures/sysfs/tree.js';

// The thermal/power tracepoints exist in this kernel, but on this VM (Firecracker guest, no
// cpuidle or cpufreq driver, no thermal zones) none of them fires: the test says so, checks that
// the program loads and attaches, and checks the residency figures only where events do fire.
let fx: SysfsFixture | undefined;
let reader: ThermalReader | undefined;
afterEach(() => {
  reader?.close();
  reader = undefined;
  fx?.close();
  fx = undefined;
});

describe('thermal reader (eBPF + sysfs)', () => {
  it('loads, attaches every tracepoint, and merges the sysfs zones', async () => {
    fx = laptopSysfs();
    reader = await openThermalReader({ sysfsRoot: fx.root });
    expect(reader.backend).toBe('ebpf');
    expect([...reader.attached].sort()).toEqual(['cpu_frequency', 'cpu_idle', 'thermal_temperature', 'thermal_zone_trip']);
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 800)); // the CPUs idle meanwhile
    const snap = ThermalSnapshotSchema.parse(await reader.read());
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(snap.zones.map((z) => [z.type, z.temperatureC])).toEqual([
      ['acpitz', 47],
      ['iwlwifi_1', null],
      ['x86_pkg_temp', 88.5],
    ]);
    expect(snap.hwmon).toHaveLength(4);
    expect(reader.memoryBytes()).toBeGreaterThan(0);
    if (snap.tracepoints.cpuIdle === 0) {
      console.info('power/cpu_idle did not fire on this host: residency not checked (program loaded and attached)');
      expect(snap.lacks.join('\n')).toMatch(/cpu_idle has not fired/);
      expect(snap.cpus.every((c) => c.idle.length === 0)).toBe(true);
    } else {
      // Time in idle states per CPU cannot exceed the time the reader was open.
      for (const c of snap.cpus) {
        const idle = c.idle.reduce((s, r) => s + r.seconds, 0);
        expect(idle).toBeGreaterThan(0);
        expect(idle).toBeLessThanOrEqual(elapsed + 1);
      }
    }
    if (snap.tracepoints.cpuFrequency === 0) {
      console.info('power/cpu_frequency did not fire on this host (no cpufreq driver)');
      expect(snap.cpus.every((c) => c.frequency.length === 0 && c.currentKhz === null)).toBe(true);
    } else {
      expect(snap.cpus.some((c) => c.currentKhz !== null && c.currentKhz > 0)).toBe(true);
    }
  });

  it('re-reads the residency maps only when their programs ran (and once more after), else reuses them', async () => {
    reader = await openThermalReader({ hwmon: false });
    const first = await reader.read();
    if (first.tracepoints.cpuIdle > 0 || first.tracepoints.cpuFrequency > 0) {
      console.info('cpu_idle/cpu_frequency fire on this host: the counters move on their own, reuse not checked');
      return;
    }
    const obj = reader.object!;
    const prog = obj.map('thermal_prog', { key: u32, value: thermalProgStats });
    const freq = obj.map('freq_residency', { key: cpuStateKey, value: cpuResidency });
    const bump = (): void => {
      const ps = prog.get(0)!;
      prog.set(0, { ...ps, freq_events: ps.freq_events + 1 });
    };
    const states = async (): Promise<number[]> => (await reader!.read()).cpus.flatMap((c) => c.frequency.map((f) => f.state)).sort((a, b) => a - b);
    try {
      await reader.read(); // the counters did not move: settled, reused from here on
      freq.set({ cpu: 0, state: 1_000_000 }, { ns: 2e9, count: 3 });
      expect(await states()).toEqual([]); // written without its program running: not re-read
      bump();
      expect(await states()).toEqual([1_000_000]); // the counter moved: read again
      freq.set({ cpu: 0, state: 2_000_000 }, { ns: 1e9, count: 1 }); // a write landing after that read
      expect(await states()).toEqual([1_000_000, 2_000_000]); // one more read after the counters stop
      freq.set({ cpu: 1, state: 3_000_000 }, { ns: 1e9, count: 1 });
      expect(await states()).toEqual([1_000_000, 2_000_000]); // settled: reused
      const snap = await reader.read();
      expect(snap.cpus.find((c) => c.cpu === 0)!.frequency.find((f) => f.state === 1_000_000)).toEqual({ state: 1_000_000, seconds: 2, entries: 3 });
      // Each map has its own counter: CPUs going idle do not make the frequency map be read again.
      const ps = prog.get(0)!;
      prog.set(0, { ...ps, idle_events: ps.idle_events + 5 });
      expect(await states()).toEqual([1_000_000, 2_000_000]);
      bump();
      expect(await states()).toEqual([1_000_000, 2_000_000, 3_000_000]);
    } finally {
      prog.close();
      freq.close();
    }
  });

  it('sizes the residency maps to the CPUs the host can have (a batch read walks every bucket)', async () => {
    expect(thermalMapSizes(1)).toEqual({ freq_residency: 256, idle_residency: 64 });
    expect(thermalMapSizes(2)).toEqual({ freq_residency: 512, idle_residency: 64 });
    expect(thermalMapSizes(16)).toEqual({ freq_residency: 4096, idle_residency: 512 });
    expect(thermalMapSizes(1024)).toEqual({ freq_residency: 8192, idle_residency: 8192 }); // the object's own bound
    const want = thermalMapSizes(numPossibleCpus());
    reader = await openThermalReader({ hwmon: false });
    const sizes = (r: ThermalReader) => ({ freq_residency: r.object!.mapInfo('freq_residency').maxEntries, idle_residency: r.object!.mapInfo('idle_residency').maxEntries });
    expect(sizes(reader)).toEqual(want);
    const { createMonitor } = await import('../../lib/metrics/index.js');
    const m = await createMonitor({ families: ['thermal'] });
    try {
      expect(sizes(m.get('thermal') as ThermalReader)).toEqual(want);
    } finally {
      m.close();
    }
  });

  it('events(): turns the kernel side on while iterated, off after; ends on abort', async () => {
    reader = await openThermalReader({ hwmon: false });
    const cfg = () => {
      const m = reader!.object!.map('thermal_config', { key: u32, value: thermalConfig });
      try {
        return m.get(0)!.emit_events;
      } finally {
        m.close();
      }
    };
    expect(cfg()).toBe(0);
    const ac = new AbortController();
    const seen: unknown[] = [];
    const done = (async () => {
      for await (const e of reader!.events({ signal: ac.signal })) seen.push(e);
    })();
    await new Promise((r) => setTimeout(r, 200));
    expect(cfg()).toBe(1);
    ac.abort();
    await done;
    expect(cfg()).toBe(0);
    // no thermal zone here: nothing to report
    expect(seen).toEqual([]);
  });

  it('sysfs backend: no eBPF, same snapshot shape, closes idempotently', async () => {
    fx = laptopSysfs();
    reader = await openThermalReader({ sysfsRoot: fx.root, backend: 'sysfs' });
    expect(reader.backend).toBe('sysfs');
    const snap = ThermalSnapshotSchema.parse(await reader.read());
    expect(snap.cpus).toEqual([]);
    expect(snap.zones[2]!.trips[0]).toEqual({ index: 0, type: 'passive', temperatureC: 85, hysteresisC: 2 });
    expect(reader.memoryBytes()).toBe(0);
    reader.close();
    reader.close();
    await expect(reader.read()).rejects.toMatchObject({ code: 'ERR_BPF_CLOSED' });
  });
});

describe('through createMonitor', () => {
  it('opens gpu, thermal and power with their preferred backends and reads them together', async () => {
    const { createMonitor } = await import('../../lib/metrics/index.js');
    const m = await createMonitor({ families: ['gpu', 'thermal', 'power'] });
    try {
      const r = await m.read();
      expect(r.errors).toEqual({});
      expect(Object.keys(r.snapshots).sort()).toEqual(['gpu', 'power', 'thermal']);
      const s = r.snapshots as unknown as Record<string, { backend: string; lacks: string[] }>;
      expect([s.gpu!.backend, s.thermal!.backend, s.power!.backend]).toEqual(['ebpf', 'ebpf', 'sysfs']);
      // this VM: no CUDA driver, no NVML, no thermal zones, no RAPL — each said in words
      const { findLibcuda } = await import('../../lib/metrics/gpu/index.js');
      if (!findLibcuda()) expect(s.gpu!.lacks.join('\n')).toMatch(/CUDA driver/);
      if (!existsSync('/sys/class/powercap')) expect(s.power!.lacks.join('\n')).toMatch(/RAPL/);
    } finally {
      m.close();
    }
  });
});

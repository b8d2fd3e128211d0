import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { EnergyEstimator, parseProcStat, procfsCpuTimes, readNodeCpuNs } from '../../lib/metrics/energy/index.js';
import { emptySysfs, laptopSysfs, type SysfsFixture } from '../fixtures/sysfs/tree.js';

let fx: SysfsFixture[] = [];
let child: ChildProcess | undefined;
afterEach(() => {
  for (const f of fx) f.close();
  fx = [];
  child?.kill('SIGKILL');
  child = undefined;
});

const S = 1_000_000_000n;

function procTree(): SysfsFixture & { setNode(busyTicks: number, idleTicks: number): void; setProc(pid: number, comm: string, utime: number, stime: number): void } {
  const f = emptySysfs();
  fx.push(f);
  return Object.assign(f, {
    setNode(busy: number, idle: number) {
      // user nice system idle iowait irq softirq steal guest guest_nice
      f.write('stat', `cpu  ${busy - 10} 0 10 ${idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n`);
    },
    setProc(pid: number, comm: string, utime: number, stime: number) {
      const tail = Array.from({ length: 40 }, () => '0');
      tail[11] = String(utime);
      tail[12] = String(stime);
      f.write(`${pid}/stat`, `${pid} (${comm}) ${['S', ...tail.slice(1)].join(' ')}`);
    },
  });
}

describe('energy estimate (Kepler approach)', () => {
  it('parses /proc/<pid>/stat with odd comms', () => {
    const fields = ['R', '1', '1', '1', '0', '-1', '4194304', '100', '0', '0', '0', '250', '50'];
    expect(parseProcStat(`42 (a) (b c)) ${fields.join(' ')} 0 0`)).toEqual({ comm: 'a) (b c)', cpuNs: 300 * 1e7 });
    expect(parseProcStat('garbage')).toBeNull();
  });

  it('shares package power by CPU time: exact on fixture procfs + RAPL', async () => {
    const sys = laptopSysfs();
    fx.push(sys);
    const proc = procTree();
    proc.setNode(1000, 5000);
    proc.setProc(100, 'worker', 10, 0);
    proc.setProc(200, 'batch job', 20, 5);
    proc.setProc(300, 'idle', 7, 0);
    const est = new EnergyEstimator({ sysfsRoot: sys.root, procRoot: proc.root, idleWatts: 5 });
    const first = await est.sample(0n);
    expect(first.processes).toEqual([]);
    // over 2 s: node busy +100 ticks; worker +30 ticks, batch job +50, idle +0; package +50 J (25 W)
    proc.setNode(1100, 5100);
    proc.setProc(100, 'worker', 40, 0);
    proc.setProc(200, 'batch job', 60, 15);
    sys.write('class/powercap/intel-rapl:0/energy_uj', 1_000_000 + 50_000_000);
    const r = await est.sample(2n * S);
    expect(r.intervalSeconds).toBe(2);
    expect(r.packageWatts).toBeCloseTo(25, 9);
    expect(r.busyCpuSeconds).toBeCloseTo(1, 9);
    expect(r.processes.map((p) => p.pid)).toEqual([200, 100]); // most power first; idle used no CPU
    const [batch, worker] = r.processes;
    expect(batch).toMatchObject({ comm: 'batch job', share: 0.5 });
    expect(batch!.cpuSeconds).toBeCloseTo(0.5, 9);
    expect(batch!.watts).toBeCloseTo(10, 9); // (25 - 5) * 0.5
    expect(batch!.joules).toBeCloseTo(20, 9);
    expect(worker!.watts).toBeCloseTo(6, 9); // (25 - 5) * 0.3
    expect(r.attributedWatts).toBeCloseTo(16, 9);
    // energy accumulates across samples
    proc.setNode(1200, 5200);
    proc.setProc(100, 'worker', 140, 0);
    sys.write('class/powercap/intel-rapl:0/energy_uj', 1_000_000 + 50_000_000 + 25_000_000);
    const r2 = await est.sample(3n * S);
    expect(r2.processes[0]).toMatchObject({ pid: 100, share: 1 });
    expect(r2.processes[0]!.joules).toBeCloseTo(12 + 20, 9); // 6 W * 2 s + 20 W * 1 s
  });

  it('processes that read as busier than the node (two reads, not one instant) share at most the whole', async () => {
    const sys = laptopSysfs();
    fx.push(sys);
    const proc = procTree();
    proc.setNode(1000, 5000);
    proc.setProc(100, 'worker', 10, 0);
    proc.setProc(200, 'batch job', 20, 0);
    const est = new EnergyEstimator({ sysfsRoot: sys.root, procRoot: proc.root, idleWatts: 5 });
    await est.sample(0n);
    // node busy +100 ticks, the processes +80 and +60 (their times read a little later)
    proc.setNode(1100, 5100);
    proc.setProc(100, 'worker', 90, 0);
    proc.setProc(200, 'batch job', 80, 0);
    sys.write('class/powercap/intel-rapl:0/energy_uj', 1_000_000 + 50_000_000);
    const r = await est.sample(2n * S);
    const [a, b] = r.processes;
    expect(a!.share).toBeCloseTo(80 / 140, 9);
    expect(b!.share).toBeCloseTo(60 / 140, 9);
    expect(r.attributedWatts).toBeCloseTo(20, 9); // all of the dynamic power (25 - 5), not more
  });

  it('a source may hand back the same array and objects; energy adds up per process, and a process gone is forgotten', async () => {
    const proc = procTree();
    const times = [
      { pid: 7, comm: 'a', cpuNs: 0 },
      { pid: 8, comm: 'b', cpuNs: 0 },
    ];
    const est = new EnergyEstimator({ procRoot: proc.root, cpuTimes: async () => times, packageWatts: async () => 10 });
    const at = async (sec: number, busyTicks: number) => {
      proc.setNode(busyTicks, 1000);
      const r = await est.sample(BigInt(sec) * S);
      return Object.fromEntries(r.processes.map((p) => [p.comm, { watts: p.watts, joules: p.joules }]));
    };
    expect(await at(0, 1000)).toEqual({});
    times[0]!.cpuNs = 0.5e9;
    times[1]!.cpuNs = 0.5e9;
    expect(await at(1, 1100)).toEqual({ a: { watts: 5, joules: 5 }, b: { watts: 5, joules: 5 } });
    times[0]!.cpuNs = 1.5e9;
    times.length = 1; // b exits
    expect(await at(2, 1200)).toEqual({ a: { watts: 10, joules: 15 } });
    times[0]!.cpuNs = 2.5e9;
    times.push({ pid: 8, comm: 'b', cpuNs: 5e9 }); // the pid again: a new process, its first sight is a baseline
    expect(await at(3, 1300)).toEqual({ a: { watts: 10, joules: 25 } });
    times[1]!.cpuNs = 6e9;
    expect(await at(4, 1400)).toEqual({ b: { watts: 10, joules: 10 } }); // a idle: not listed, still known
    times[0]!.cpuNs = 3.5e9;
    times[1]!.cpuNs = 6e9;
    expect(await at(5, 1500)).toEqual({ a: { watts: 10, joules: 35 } });
  });

  it('without RAPL (this host) shares are computed and watts are null', async () => {
    const sys = emptySysfs();
    fx.push(sys);
    child = spawn(process.execPath, ['-e', 'const t=Date.now()+5000; while (Date.now() < t) {}'], { stdio: 'ignore' });
    const pid = child.pid!;
    const est = new EnergyEstimator({ sysfsRoot: sys.root });
    await est.sample();
    await new Promise((r) => setTimeout(r, 600));
    const r = await est.sample();
    expect(r.packageWatts).toBeNull();
    const me = r.processes.find((p) => p.pid === pid);
    expect(me).toBeDefined();
    expect(me!.watts).toBeNull();
    expect(me!.share).toBeGreaterThan(0);
    const total = r.processes.reduce((s, p) => s + p.share, 0);
    expect(total).toBeLessThanOrEqual(1.05); // tick rounding between the two files
  });

  it('procfs sources read the real /proc', async () => {
    const times = [...(await procfsCpuTimes({ pids: [process.pid] })())];
    expect(times).toHaveLength(1);
    expect(times[0]!.cpuNs).toBeGreaterThan(0);
    const node = await readNodeCpuNs();
    expect(node.totalNs).toBeGreaterThan(node.busyNs);
  });
});

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  calcLoad,
  calcLoadN,
  EXP_1,
  EXP_15,
  EXP_5,
  FIXED_1,
  fixedPowerInt,
  FloatLoadAverage,
  formatFixedLoad,
  KernelLoadAverage,
  LoadAverageSampler,
  parseLoadavg,
  parseProcStat,
  procStatLoadSource,
  type TickInfo,
} from 'smoothtask/aggregate';

// Reference: kernel/sched/loadavg.c transcribed with BigInt (unsigned long arithmetic).
const F = 11n;
const ONE = 1n << F;
function refCalcLoad(load: bigint, exp: bigint, active: bigint): bigint {
  let n = load * exp + active * (ONE - exp);
  if (active >= load) n += ONE - 1n;
  return n / ONE;
}
function refFixedPower(x: bigint, n: number): bigint {
  let result = ONE;
  if (n) {
    for (;;) {
      if (n & 1) {
        result *= x;
        result += 1n << (F - 1n);
        result >>= F;
      }
      n >>= 1;
      if (!n) break;
      x *= x;
      x += 1n << (F - 1n);
      x >>= F;
    }
  }
  return result;
}

describe('kernel-exact load average', () => {
  it('constants are the kernel values', () => {
    expect([FIXED_1, EXP_1, EXP_5, EXP_15]).toEqual([2048, 1884, 2014, 2037]);
    // they are FIXED_1 / exp(5s / T) rounded
    expect(Math.round(2048 / Math.exp(5 / 60))).toBe(EXP_1);
    expect(Math.round(2048 / Math.exp(5 / 300))).toBe(EXP_5);
    expect(Math.round(2048 / Math.exp(5 / 900))).toBe(EXP_15);
  });

  it('calc_load / calc_load_n equal the BigInt transcription of the C code', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2048 * 4096 }),
        fc.constantFrom(EXP_1, EXP_5, EXP_15),
        fc.integer({ min: 0, max: 4096 }),
        fc.integer({ min: 1, max: 5000 }),
        (load, exp, nActive, n) => {
          const active = nActive * FIXED_1;
          expect(calcLoad(load, exp, active)).toBe(Number(refCalcLoad(BigInt(load), BigInt(exp), BigInt(active))));
          expect(fixedPowerInt(exp, n)).toBe(Number(refFixedPower(BigInt(exp), n)));
          expect(calcLoadN(load, exp, active, n)).toBe(
            Number(refCalcLoad(BigInt(load), refFixedPower(BigInt(exp), n), BigInt(active))),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('constant load converges to exactly n (upward rounding) and prints like /proc/loadavg', () => {
    const k = new KernelLoadAverage();
    for (let i = 0; i < 2000; i++) k.update(3);
    expect(k.avenrun).toEqual([3 * FIXED_1, 3 * FIXED_1, 3 * FIXED_1]);
    expect(k.text).toBe('3.00 3.00 3.00');
    // one minute of a single runnable task from idle: 1 - e^-1 ≈ 0.63 (kernel's rounding included)
    const k2 = new KernelLoadAverage();
    for (let i = 0; i < 12; i++) k2.update(1);
    expect(k2.values.one).toBeCloseTo(1 - Math.exp(-1), 2);
    expect(formatFixedLoad(0)).toBe('0.00');
    expect(formatFixedLoad(FIXED_1 / 2)).toBe('0.50');
  });

  it('per-second float variant tracks the kernel variant for a step input', () => {
    const k = new KernelLoadAverage();
    const f = new FloatLoadAverage();
    f.update(0, 0);
    for (let s = 1; s <= 120; s++) {
      f.update(2, s * 1000);
      if (s % 5 === 0) k.update(2);
    }
    for (const key of ['one', 'five', 'fifteen'] as const) expect(Math.abs(f.values[key] - k.values[key])).toBeLessThan(0.01);
  });

  it('parses /proc/loadavg and /proc/stat of this machine', () => {
    const l = parseLoadavg(readFileSync('/proc/loadavg', 'utf8'));
    expect(l.values.one).toBeGreaterThanOrEqual(0);
    expect(l.total).toBeGreaterThan(0);
    const s = parseProcStat(readFileSync('/proc/stat', 'utf8'));
    expect(s.cpus).toBeGreaterThan(0);
    expect(s.running).toBeGreaterThanOrEqual(1); // at least this process
    expect(s.cpu.total).toBeGreaterThan(s.cpu.busy);
  });
});

describe('LoadAverageSampler', () => {
  it('with a fake clock: feeds both variants, kernel once per period, catches up missed periods', () => {
    const sampler = new LoadAverageSampler({ source: () => ({ running: 1, blocked: 0 }) });
    const ref = new KernelLoadAverage();
    for (let t = 0; t <= 60_000; t += 1000) sampler.sample({ running: 1, blocked: 0, utilisation: 0.5 }, t);
    for (let i = 0; i < 12; i++) ref.update(1);
    expect(sampler.current().kernel.text).toBe(ref.text);
    // a 20 s gap (event loop blocked / suspended) = 4 periods at once, like NO_HZ calc_load_n
    sampler.sample({ running: 4, blocked: 1 }, 80_000);
    ref.update(5, 4);
    expect(sampler.current().kernel.text).toBe(ref.text);
    const c = sampler.current();
    expect(c.cpu.one).toBeCloseTo(0.5 * (1 - Math.exp(-1)), 6);
    expect(c.runQueue.current).toBe(5);
    sampler.stop();
  });

  it('does not drift: ticks stay on the start + k*interval grid with real timers', async () => {
    const ticks: TickInfo[] = [];
    const sampler = new LoadAverageSampler({ intervalMs: 40, source: () => ({ running: 0, blocked: 0 }) });
    sampler.on('tick', (t: TickInfo) => ticks.push(t));
    await sampler.start();
    await new Promise((r) => setTimeout(r, 1300));
    sampler.stop();
    expect(ticks.length).toBeGreaterThan(15);
    const first = ticks[0]!;
    const last = ticks.at(-1)!;
    // scheduled times are an exact arithmetic progression from the start
    for (const t of ticks) expect(t.scheduled - first.scheduled).toBeCloseTo((t.index - first.index) * 40, 6);
    // lateness does not accumulate: the last ticks are about as late as the first ones, not
    // N * jitter (medians of five, so one tick delayed by a busy host does not decide it)
    const late = ticks.map((t) => t.actual - t.scheduled);
    const median5 = (v: number[]) => [...v].sort((a, b) => a - b)[2]!;
    expect(median5(late.slice(-5))).toBeLessThan(median5(late.slice(0, 5)) + 40);
    expect(last.scheduled).toBeGreaterThan(first.scheduled);
    const lateness = [...late].sort((a, b) => a - b);
    // never early: a timer that fires before the due time waits out the remainder
    expect(Math.min(...lateness)).toBeGreaterThanOrEqual(0);
  });

  it('does not keep the process alive (unref timer)', () => {
    const code = `
      import { LoadAverageSampler } from './lib/aggregate/index.ts';
      const s = new LoadAverageSampler({ intervalMs: 100 });
      await s.start();
      console.log('started', s.current().samples);
    `;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('started 1');
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('samples the real node from /proc/stat', async () => {
    const src = procStatLoadSource();
    const a = await src();
    expect(a.utilisation).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    const b = await src();
    expect(b.utilisation).toBeGreaterThanOrEqual(0);
    expect(b.utilisation).toBeLessThanOrEqual(1);
    const sampler = new LoadAverageSampler({ intervalMs: 100 });
    await sampler.start();
    await new Promise((r) => setTimeout(r, 450));
    const c = sampler.current();
    sampler.stop();
    expect(c.samples).toBeGreaterThanOrEqual(3);
    // seeded from /proc/loadavg, so the kernel variant starts near the real one
    const real = parseLoadavg(readFileSync('/proc/loadavg', 'utf8')).values.fifteen;
    expect(Math.abs(c.kernel.fifteen - real)).toBeLessThan(0.05);
  });
});

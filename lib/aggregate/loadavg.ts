/**
 * Load averages: 1, 5 and 15 minute exponentially damped averages of the run-queue length and
 * of CPU utilisation.
 *
 * Two variants for the run queue (see docs/aggregate.md, "Load averages", for where they differ):
 * - {@link KernelLoadAverage}: the kernel's `/proc/loadavg` arithmetic exactly (11-bit fixed
 *   point, `EXP_1 = 1884`, `EXP_5 = 2014`, `EXP_15 = 2037`, one update per 5 s period,
 *   `calc_load_n` for missed periods), from kernel/sched/loadavg.c.
 * - {@link FloatLoadAverage}: floating point, time-aware (`exp(-dt / 60 s)` …), updated every
 *   sample (1 s by default). The same time constants, five times the sampling rate.
 *
 * {@link LoadAverageSampler} samples `/proc/stat` (or a source you give) on a schedule computed
 * from absolute time, so it does not drift, with an unref'd timer.
 * @module
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { ConfigError } from '../errors/index.js';

/** Bits of fractional precision of the kernel's fixed-point load (`FSHIFT`). */
export const FSHIFT = 11;
/** 1.0 in the kernel's fixed point (`FIXED_1 = 1 << FSHIFT`). */
export const FIXED_1 = 1 << FSHIFT;
/** `FIXED_1 / exp(5 s / 1 min)` as the kernel rounds it. */
export const EXP_1 = 1884;
/** `FIXED_1 / exp(5 s / 5 min)`. */
export const EXP_5 = 2014;
/** `FIXED_1 / exp(5 s / 15 min)`. */
export const EXP_15 = 2037;
/**
 * The kernel's update period in ms. The kernel's `LOAD_FREQ` is `5 * HZ + 1` jiffies, i.e.
 * 5 s plus one tick (5.004 s at HZ=250); we use 5 s and say so in the docs.
 */
export const LOAD_PERIOD_MS = 5000;

/** The kernel's `calc_load()`: one period of damping, rounding up while the load rises. */
export function calcLoad(load: number, exp: number, active: number): number {
  let newload = load * exp + active * (FIXED_1 - exp);
  if (active >= load) newload += FIXED_1 - 1;
  return Math.floor(newload / FIXED_1);
}

/** The kernel's `fixed_power_int(x, FSHIFT, n)`: `x^n` in fixed point with its rounding. */
export function fixedPowerInt(x: number, n: number, fracBits = FSHIFT): number {
  let result = 2 ** fracBits;
  const half = 2 ** (fracBits - 1);
  let xx = x;
  let nn = n;
  if (nn) {
    for (;;) {
      if (nn & 1) result = Math.floor((result * xx + half) / 2 ** fracBits);
      nn >>>= 1;
      if (!nn) break;
      xx = Math.floor((xx * xx + half) / 2 ** fracBits);
    }
  }
  return result;
}

/** The kernel's `calc_load_n()`: `n` periods at once (used after NO_HZ idle). */
export function calcLoadN(load: number, exp: number, active: number, n: number): number {
  return calcLoad(load, fixedPowerInt(exp, n), active);
}

/** Formats one fixed-point load the way `/proc/loadavg` prints it (`"0.52"`). */
export function formatFixedLoad(x: number): string {
  const v = x + FIXED_1 / 200; // the kernel adds this offset to round to 2 decimals
  const int = Math.floor(v / FIXED_1);
  const frac = Math.floor(((v % FIXED_1) * 100) / FIXED_1);
  return `${int}.${String(frac).padStart(2, '0')}`;
}

/** A triple of 1, 5 and 15 minute averages. */
export interface LoadTriple {
  /** 1-minute average. */
  one: number;
  /** 5-minute average. */
  five: number;
  /** 15-minute average. */
  fifteen: number;
}

/**
 * The kernel's load-average state machine, bit for bit: feed it the number of active tasks
 * once per period.
 */
export class KernelLoadAverage {
  /** The fixed-point state `avenrun[0..2]`. */
  readonly avenrun: [number, number, number];

  /** Starts from fixed-point values (e.g. {@link parseLoadavg} of the current `/proc/loadavg`). */
  constructor(initial: [number, number, number] = [0, 0, 0]) {
    this.avenrun = [...initial];
  }

  /** One period with `active` runnable + uninterruptible tasks (`n` periods when n > 1). */
  update(active: number, n = 1): void {
    const a = Math.max(0, Math.round(active)) * FIXED_1;
    if (n <= 0) return;
    const f = n === 1 ? calcLoad : (l: number, e: number, act: number) => calcLoadN(l, e, act, n);
    this.avenrun[0] = f(this.avenrun[0], EXP_1, a);
    this.avenrun[1] = f(this.avenrun[1], EXP_5, a);
    this.avenrun[2] = f(this.avenrun[2], EXP_15, a);
  }

  /** The averages as numbers (`avenrun / FIXED_1`). */
  get values(): LoadTriple {
    return { one: this.avenrun[0] / FIXED_1, five: this.avenrun[1] / FIXED_1, fifteen: this.avenrun[2] / FIXED_1 };
  }

  /** The averages as `/proc/loadavg` prints them (`"0.52 0.58 0.59"`). */
  get text(): string {
    return this.avenrun.map(formatFixedLoad).join(' ');
  }
}

/** What {@link parseLoadavg} returns. */
export interface ParsedLoadavg {
  /** The three averages as printed. */
  values: LoadTriple;
  /** The same in the kernel's fixed point (rounded; the printed form lost precision). */
  fixed: [number, number, number];
  /** Runnable scheduling entities now. */
  running: number;
  /** Scheduling entities that exist. */
  total: number;
}

/** Parses the first three fields of `/proc/loadavg` into approximate fixed-point values. */
export function parseLoadavg(text: string): ParsedLoadavg {
  const f = text.trim().split(/\s+/);
  const nums = [0, 1, 2].map((i) => Number(f[i] ?? 'NaN'));
  const [run, tot] = (f[3] ?? '0/0').split('/').map(Number);
  return {
    values: { one: nums[0]!, five: nums[1]!, fifteen: nums[2]! },
    fixed: nums.map((v) => Math.round(v * FIXED_1)) as [number, number, number],
    running: run ?? 0,
    total: tot ?? 0,
  };
}

/**
 * Floating-point, time-aware damped averages with 1, 5 and 15 minute time constants:
 * `avg += (1 - exp(-dt / T)) * (x - avg)`. Works for any sampling interval.
 */
export class FloatLoadAverage {
  private t: number | undefined;
  private v: LoadTriple;
  /** Starts from the given averages (default zeros, like a booting kernel). */
  constructor(initial: LoadTriple = { one: 0, five: 0, fifteen: 0 }) {
    this.v = { ...initial };
  }
  /** Adds a sample `x` taken at `timeMs`. The first sample only sets the clock. */
  update(x: number, timeMs: number): void {
    if (this.t === undefined) {
      this.t = timeMs;
      return;
    }
    const dt = timeMs - this.t;
    if (!(dt > 0)) return;
    this.t = timeMs;
    const step = (avg: number, T: number) => avg + (1 - Math.exp(-dt / T)) * (x - avg);
    this.v = { one: step(this.v.one, 60_000), five: step(this.v.five, 300_000), fifteen: step(this.v.fifteen, 900_000) };
  }
  /** The current averages. */
  get values(): LoadTriple {
    return { ...this.v };
  }
}

/** One sample of the node: CPU utilisation and run-queue size. */
export interface LoadSample {
  /** CPU utilisation since the previous sample, 0..1 over all CPUs; `undefined` on the first. */
  utilisation?: number;
  /** Runnable tasks (`procs_running`), the sampler itself excluded when `excludeSelf`. */
  running: number;
  /** Tasks blocked on I/O (`procs_blocked`). */
  blocked: number;
}

/** Cumulative CPU times from the first line of `/proc/stat`, in clock ticks. */
export interface CpuTimes {
  /** Busy ticks (everything but idle and iowait). */
  busy: number;
  /** All ticks. */
  total: number;
}

/** What {@link parseProcStat} returns. */
export interface ParsedProcStat {
  /** Aggregate CPU times. */
  cpu: CpuTimes;
  /** `procs_running`. */
  running: number;
  /** `procs_blocked`. */
  blocked: number;
  /** Number of `cpuN` lines. */
  cpus: number;
}

/**
 * The aggregate `cpu ` line of /proc/stat (its first line), in ticks: busy is everything but
 * idle and iowait. Fields: user nice system idle iowait irq softirq steal guest guest_nice;
 * guest is already in user.
 */
export function parseCpuLine(line: string): CpuTimes {
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Parses `/proc/stat`: aggregate CPU times and the procs_running / procs_blocked counts. */
export function parseProcStat(text: string): ParsedProcStat {
  let cpu: CpuTimes = { busy: 0, total: 0 };
  let running = 0;
  let blocked = 0;
  let cpus = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu ')) cpu = parseCpuLine(line);
    else if (/^cpu\d/.test(line)) cpus++;
    else if (line.startsWith('procs_running ')) running = Number(line.slice(14));
    else if (line.startsWith('procs_blocked ')) blocked = Number(line.slice(14));
  }
  return { cpu, running, blocked, cpus };
}

/** Utilisation between two CPU time readings, 0..1 (`NaN` when no time passed). */
export function cpuUtilisation(prev: CpuTimes, cur: CpuTimes): number {
  const dt = cur.total - prev.total;
  if (!(dt > 0)) return Number.NaN;
  return Math.min(1, Math.max(0, (cur.busy - prev.busy) / dt));
}

/**
 * A source of {@link LoadSample}s from `/proc/stat` (`procRoot` for tests). The run-queue count
 * includes the reading thread itself, which `excludeSelf` (default true) subtracts.
 */
export function procStatLoadSource(opts: { procRoot?: string; excludeSelf?: boolean } = {}): () => Promise<LoadSample> {
  const path = `${opts.procRoot ?? '/proc'}/stat`;
  const excludeSelf = opts.excludeSelf ?? true;
  let prev: CpuTimes | undefined;
  return async () => {
    const s = parseProcStat(await readFile(path, 'utf8'));
    const utilisation = prev ? cpuUtilisation(prev, s.cpu) : undefined;
    prev = s.cpu;
    const running = Math.max(0, s.running - (excludeSelf ? 1 : 0));
    return { ...(utilisation !== undefined && !Number.isNaN(utilisation) ? { utilisation } : {}), running, blocked: s.blocked };
  };
}

/** Options of {@link LoadAverageSampler}. */
export interface LoadAverageSamplerOptions {
  /** Sampling interval in ms (default 1000). */
  intervalMs?: number;
  /** The kernel variant's period in ms (default {@link LOAD_PERIOD_MS}). */
  kernelPeriodMs?: number;
  /** Where samples come from (default {@link procStatLoadSource}). */
  source?: () => LoadSample | Promise<LoadSample>;
  /** Count `procs_blocked` as active like the kernel counts uninterruptible tasks (default true). */
  includeBlocked?: boolean;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
  /** Seed the run-queue averages from the current `/proc/loadavg` instead of zeros (default true). */
  seedFromProc?: boolean;
  /** Stops the sampler when aborted. */
  signal?: AbortSignal;
}

/** Averages plus the latest raw value. */
export interface CurrentTriple extends LoadTriple {
  /** The latest sample. */
  current: number;
}

/** Kernel-variant averages plus their `/proc/loadavg` text. */
export interface KernelTriple extends LoadTriple {
  /** As `/proc/loadavg` prints them (`"0.52 0.58 0.59"`). */
  text: string;
}

/** What {@link LoadAverageSampler.current} returns. */
export interface LoadAverages {
  /** Damped averages of CPU utilisation (0..1), per-second variant. */
  cpu: CurrentTriple;
  /** Damped averages of the run-queue length (runnable + blocked), per-second variant. */
  runQueue: CurrentTriple;
  /** The kernel-exact run-queue variant, updated once per period. */
  kernel: KernelTriple;
  /** Samples taken. */
  samples: number;
  /** Scheduled ticks that were skipped because a sample came later than a whole interval. */
  missed: number;
  /** Errors from the source (the sampler keeps going). */
  errors: number;
}

/** Per-tick timing, emitted as the `'tick'` event (for observability and drift tests). */
export interface TickInfo {
  /** Tick number since start (skipped ticks count). */
  index: number;
  /** When the tick was due (`start + index * interval`). */
  scheduled: number;
  /** When it ran. */
  actual: number;
}

/**
 * Samples the node every interval and keeps the load averages of both variants.
 * The timer is unref'd: a sampler never keeps the process alive by itself.
 *
 * Events: `'tick'` ({@link TickInfo}), `'sample'` ({@link LoadAverages}), `'error'` is NOT used
 * (source errors are counted in `errors` so an unhandled `'error'` cannot crash the host).
 */
export class LoadAverageSampler extends EventEmitter {
  private readonly interval: number;
  private readonly period: number;
  private readonly source: () => LoadSample | Promise<LoadSample>;
  private readonly includeBlocked: boolean;
  private readonly now: () => number;
  private readonly seed: boolean;
  private readonly kernelAvg = new KernelLoadAverage();
  private runAvg = new FloatLoadAverage();
  private readonly cpuAvg = new FloatLoadAverage();
  private timer: NodeJS.Timeout | undefined;
  private start0 = 0;
  private index = 0;
  private nextKernel = 0;
  private lastRun = 0;
  private lastUtil = 0;
  private started = false;
  private stopped = false;
  private counts = { samples: 0, missed: 0, errors: 0 };

  /** Creates a sampler; call {@link start} (or use {@link sample} by hand with a fake clock). */
  constructor(opts: LoadAverageSamplerOptions = {}) {
    super();
    this.interval = opts.intervalMs ?? 1000;
    this.period = opts.kernelPeriodMs ?? LOAD_PERIOD_MS;
    if (!(this.interval > 0) || !(this.period > 0)) throw new ConfigError('intervalMs and kernelPeriodMs must be > 0', [`intervalMs: ${this.interval}`, `kernelPeriodMs: ${this.period}`]);
    this.source = opts.source ?? procStatLoadSource();
    this.includeBlocked = opts.includeBlocked ?? true;
    this.now = opts.now ?? (() => performance.now());
    this.seed = opts.seedFromProc ?? opts.source === undefined;
    opts.signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  /** Starts sampling (idempotent); resolves after the first sample. */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.seed) {
      try {
        const p = parseLoadavg(await readFile('/proc/loadavg', 'utf8'));
        this.kernelAvg.avenrun.splice(0, 3, ...p.fixed);
        this.runAvg = new FloatLoadAverage(p.values);
      } catch {
        /* no /proc/loadavg: start from zero */
      }
    }
    this.start0 = this.now();
    this.nextKernel = this.start0 + this.period;
    await this.runTick(this.start0);
    this.schedule();
  }

  /**
   * Feeds one sample taken at `timeMs` (sampler clock). {@link start} calls this on its
   * schedule; tests and custom loops may call it directly.
   */
  sample(s: LoadSample, timeMs: number): void {
    this.counts.samples++;
    const active = s.running + (this.includeBlocked ? s.blocked : 0);
    this.lastRun = active;
    this.runAvg.update(active, timeMs);
    if (s.utilisation !== undefined) {
      this.lastUtil = s.utilisation;
      this.cpuAvg.update(s.utilisation, timeMs);
    }
    if (this.nextKernel === 0) this.nextKernel = timeMs + this.period;
    if (timeMs >= this.nextKernel) {
      // like the kernel after NO_HZ idle: all elapsed periods at once with the current count
      const n = 1 + Math.floor((timeMs - this.nextKernel) / this.period);
      this.kernelAvg.update(active, n);
      this.nextKernel += n * this.period;
    }
    this.emit('sample', this.current());
  }

  private async runTick(at: number): Promise<void> {
    try {
      const s = await this.source();
      if (!this.stopped) this.sample(s, at);
    } catch {
      this.counts.errors++;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.index++;
    let due = this.start0 + this.index * this.interval;
    const now = this.now();
    if (now > due + this.interval) {
      // we fell behind by whole intervals (blocked event loop): skip them, keep the grid
      const skip = Math.floor((now - due) / this.interval);
      this.counts.missed += skip;
      this.index += skip;
      due = this.start0 + this.index * this.interval;
    }
    const fire = (): void => {
      const actual = this.now();
      if (actual < due) {
        // libuv timers run on the loop's millisecond clock and can fire a little before the
        // high-resolution due time: wait out the remainder instead of ticking early.
        this.timer = setTimeout(fire, Math.ceil(due - actual));
        this.timer.unref();
        return;
      }
      const info: TickInfo = { index: this.index, scheduled: due, actual };
      this.emit('tick', info);
      // sample at the scheduled instant's grid time so the averages see regular steps
      void this.runTick(Math.max(due, Math.min(actual, due + this.interval / 2))).finally(() => this.schedule());
    };
    this.timer = setTimeout(fire, Math.max(0, Math.ceil(due - now)));
    this.timer.unref();
  }

  /** The current averages of both variants. */
  current(): LoadAverages {
    return {
      cpu: { ...this.cpuAvg.values, current: this.lastUtil },
      runQueue: { ...this.runAvg.values, current: this.lastRun },
      kernel: { ...this.kernelAvg.values, text: this.kernelAvg.text },
      ...this.counts,
    };
  }

  /** Stops sampling (idempotent). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** True once stopped. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Same as {@link stop}. */
  [Symbol.dispose](): void {
    this.stop();
  }
}

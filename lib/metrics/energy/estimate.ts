/**
 * Per-process power and energy estimate, the Kepler approach: the package power measured by
 * RAPL is shared among processes in proportion to the CPU time each used in the interval.
 *
 *   process watts = (package watts − idleWatts) × (process CPU time / busy CPU time of the node)
 *
 * Busy CPU time comes from `/proc/stat` (user+nice+system+irq+softirq+steal), process CPU time
 * from `/proc/<pid>/stat` (utime+stime) or from any {@link CpuTimeSource} (e.g. the eBPF
 * scheduler reader). Limits: CPU time is not energy — a process stalled on memory, running
 * AVX-512 or at a higher frequency costs more per second than the model says; GPU, disk and
 * network energy are not in the package counter; IRQ and kernel-thread time stay unattributed.
 * @module
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseCpuLine, parseProcStat as parseNodeStat } from '../../aggregate/loadavg.js';
import { validate } from '../../errors/validate.js';
import { RaplSampler } from '../power/rapl.js';
import { MetricsError } from '../errors.js';
import { readText } from '../procfs.js';

/** USER_HZ: the unit of /proc/<pid>/stat and /proc/stat times (100 on every mainstream Linux ABI). */
export const USER_HZ = 100;
const NS_PER_TICK = 1e9 / USER_HZ;

/** Cumulative CPU time of one process. */
export interface CpuTimeSample {
  pid: number;
  comm: string;
  /** CPU time since the process started (or since the source began counting), ns. */
  cpuNs: number;
}

/**
 * Where process CPU times come from: a function returning cumulative times. The estimator
 * reads what one call returned before it calls again and keeps none of its objects, so a
 * source may hand back the same array and objects, updated, every time.
 */
export type CpuTimeSource = () => Promise<Iterable<CpuTimeSample>>;

/** Parses one `/proc/<pid>/stat` line: comm and utime+stime in ns; null when malformed. */
export function parseProcStat(line: string): { comm: string; cpuNs: number } | null {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')'); // comm may itself contain ')'
  if (open < 0 || close < open) return null;
  const rest = line.slice(close + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return { comm: line.slice(open + 1, close), cpuNs: (utime + stime) * NS_PER_TICK };
}

/** CPU time of every process (or of `pids`) from procfs. */
export function procfsCpuTimes(options: { procRoot?: string; pids?: readonly number[] } = {}): CpuTimeSource {
  const root = options.procRoot ?? '/proc';
  return async () => {
    const pids = options.pids ?? (await readdir(root)).filter((n) => /^\d+$/.test(n)).map(Number);
    const out: CpuTimeSample[] = [];
    for (const pid of pids) {
      // null: exited between readdir and read
      const t = readText(join(root, String(pid), 'stat'));
      const p = t === null ? null : parseProcStat(t);
      if (p) out.push({ pid, ...p });
    }
    return out;
  };
}

/**
 * Busy and total CPU time of the node from the `cpu` line of /proc/stat, ns.
 * @param procRoot procfs root (default `/proc`)
 * @param readFile how the file is read (default: opened, read and closed each time)
 */
export async function readNodeCpuNs(procRoot = '/proc', readFile: (path: string) => string | null = readText): Promise<{ busyNs: number; totalNs: number }> {
  const path = join(procRoot, 'stat');
  const text = readFile(path);
  if (text === null) throw new MetricsError('ERR_METRICS_SOURCE', `cannot read ${path}`);
  // The one /proc/stat parser (lib/aggregate): busy is everything but idle and iowait. The
  // aggregate line comes first; the rest (a long interrupt line among them) is not split.
  const nl = text.indexOf('\n');
  const cpu = text.startsWith('cpu ') ? parseCpuLine(nl < 0 ? text : text.slice(0, nl)) : parseNodeStat(text).cpu;
  if (!(cpu.total > 0)) throw new MetricsError('ERR_METRICS_SOURCE', `no cpu line in ${path}`);
  return { busyNs: cpu.busy * NS_PER_TICK, totalNs: cpu.total * NS_PER_TICK };
}

/** Options of {@link EnergyEstimator}. */
export const EnergyEstimatorOptionsSchema = z
  .object({
    /** sysfs root for RAPL (default `/sys`). */
    sysfsRoot: z.string().min(1).optional(),
    /** procfs root (default `/proc`). */
    procRoot: z.string().min(1).optional(),
    /** Only these processes (default every process). */
    pids: z.array(z.number().int().positive()).optional(),
    /** Package power when the node idles, W: only power above it is attributed (default 0: all of it). */
    idleWatts: z.number().nonnegative().default(0),
  })
  .strict();
/** Options of {@link EnergyEstimator}. */
export type EnergyEstimatorOptions = z.input<typeof EnergyEstimatorOptionsSchema> & {
  /** Process CPU times (default procfs). */
  cpuTimes?: CpuTimeSource;
  /** Package power in W (default: sum of the top-level RAPL `package-*` zones); null when unknown. */
  packageWatts?: (nowNs: bigint) => Promise<number | null>;
  /** The node's busy and total CPU time, ns (default {@link readNodeCpuNs} of `procRoot`). */
  nodeCpuNs?: () => Promise<{ busyNs: number; totalNs: number }>;
};

/** Estimated power of one process over the last interval. */
export interface ProcessEnergy {
  pid: number;
  comm: string;
  /** CPU time used in the interval, s. */
  cpuSeconds: number;
  /** Share of the node's busy CPU time, 0..1. */
  share: number;
  /** Estimated power over the interval, W (null when package power is unknown). */
  watts: number | null;
  /** Estimated energy since the estimator first saw the process, J. */
  joules: number;
}

/** One estimate. */
export interface EnergyEstimate {
  /** Interval covered, s (0 on the first sample). */
  intervalSeconds: number;
  /** Measured package power, W; null without RAPL. */
  packageWatts: number | null;
  idleWatts: number;
  /** Sum over processes, W. */
  attributedWatts: number;
  /** Busy CPU time of the node in the interval, s. */
  busyCpuSeconds: number;
  /** Processes that used CPU in the interval, most power first. */
  processes: ProcessEnergy[];
}

/** What {@link EnergyEstimator} keeps of one process between samples. */
interface ProcEntry {
  pid: number;
  comm: string;
  cpuNs: number;
  joules: number;
  seen: number;
  deltaNs: number;
}

/** Per-process power/energy estimator. Call {@link sample} periodically (e.g. each second). */
export class EnergyEstimator {
  readonly #idleWatts: number;
  readonly #cpuTimes: CpuTimeSource;
  readonly #packageWatts: (nowNs: bigint) => Promise<number | null>;
  readonly #procRoot: string;
  readonly #nodeCpuNs: () => Promise<{ busyNs: number; totalNs: number }>;
  /**
   * Per process seen at the last sample: its CPU time then, its energy so far, the sample that
   * saw it and its CPU time in that sample's interval. One entry per process, updated in place
   * (no Map, tuple and array built and grown at every sample of a service sampling each second).
   */
  readonly #procs = new Map<number, ProcEntry>();
  #sampleNo = 0;
  #prevBusyNs: number | null = null;
  #prevT: bigint | null = null;

  /** Creates an estimator; the first sample() sets the baseline. @param options roots, pids, idle power and optional CPU-time / package-power sources. */
  constructor(options: EnergyEstimatorOptions = {}) {
    const { cpuTimes, packageWatts, nodeCpuNs, ...rest } = options;
    const o = validate(EnergyEstimatorOptionsSchema, rest, 'energy estimator options');
    this.#idleWatts = o.idleWatts;
    this.#procRoot = o.procRoot ?? '/proc';
    const procRoot = this.#procRoot;
    this.#nodeCpuNs = nodeCpuNs ?? (() => readNodeCpuNs(procRoot));
    this.#cpuTimes = cpuTimes ?? procfsCpuTimes({ procRoot: this.#procRoot, ...(o.pids ? { pids: o.pids } : {}) });
    if (packageWatts) this.#packageWatts = packageWatts;
    else {
      const rapl = new RaplSampler(o.sysfsRoot ? { sysfsRoot: o.sysfsRoot } : {});
      this.#packageWatts = async (nowNs) => {
        const pkgs = (await rapl.sample(nowNs)).filter((z) => z.parent === null && z.name.startsWith('package'));
        if (!pkgs.length || pkgs.some((z) => z.watts === null)) return null;
        return pkgs.reduce((s, z) => s + (z.watts ?? 0), 0);
      };
    }
  }

  /** Takes a sample; the first one only sets the baseline (empty `processes`). */
  async sample(nowNs: bigint = process.hrtime.bigint()): Promise<EnergyEstimate> {
    const [watts, times, node] = await Promise.all([this.#packageWatts(nowNs), this.#cpuTimes(), this.#nodeCpuNs()]);
    const first = this.#prevBusyNs === null || this.#prevT === null;
    const interval = first ? 0 : Number(nowNs - this.#prevT!) / 1e9;
    const busyDelta = first ? 0 : Math.max(0, node.busyNs - this.#prevBusyNs!);
    const dynamic = watts === null ? null : Math.max(0, watts - this.#idleWatts);
    const no = ++this.#sampleNo;
    const procs = this.#procs;
    // The entries that used CPU in this sample's interval.
    const active: ProcEntry[] = [];
    let sum = 0;
    const seen = (t: CpuTimeSample): void => {
      const e = procs.get(t.pid);
      if (e === undefined) {
        // First seen (every process at the first sample): the baseline of its next interval.
        procs.set(t.pid, { pid: t.pid, comm: t.comm, cpuNs: t.cpuNs, joules: 0, seen: no, deltaNs: 0 });
        return;
      }
      const d = Math.max(0, t.cpuNs - e.cpuNs);
      e.cpuNs = t.cpuNs;
      e.seen = no;
      if (d === 0) return;
      e.comm = t.comm;
      e.deltaNs = d;
      active.push(e);
      sum += d;
    };
    // An array (what the sources here return) by index: a for-of, in the tiers V8 runs code at
    // that is called once a second, makes an iterator result per process.
    if (Array.isArray(times)) for (let i = 0; i < times.length; i++) seen(times[i] as CpuTimeSample);
    else for (const t of times) seen(t);
    // Gone since the last sample (or not among the processes asked for): forgotten.
    procs.forEach((e, pid) => {
      if (e.seen !== no) procs.delete(pid);
    });
    // The node's busy time and the processes' times are two reads (ticks and nanoseconds, not at
    // the same instant): shares are of whichever is larger, so together they never pass 1.
    const whole = Math.max(busyDelta, sum);
    const processes: ProcessEnergy[] = [];
    let attributed = 0;
    for (let i = 0; i < active.length; i++) {
      const e = active[i]!;
      const share = busyDelta > 0 ? e.deltaNs / whole : 0;
      const w = dynamic === null ? null : dynamic * share;
      e.joules += (w ?? 0) * interval;
      attributed += w ?? 0;
      processes.push({ pid: e.pid, comm: e.comm, cpuSeconds: e.deltaNs / 1e9, share, watts: w, joules: e.joules });
    }
    this.#prevBusyNs = node.busyNs;
    this.#prevT = nowNs;
    processes.sort((a, b) => (b.watts ?? b.share) - (a.watts ?? a.share) || b.share - a.share);
    return {
      intervalSeconds: interval,
      packageWatts: watts,
      idleWatts: this.#idleWatts,
      attributedWatts: attributed,
      busyCpuSeconds: busyDelta / 1e9,
      processes,
    };
  }
}

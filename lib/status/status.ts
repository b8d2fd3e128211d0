/**
 * Node status for a load balancer: task counts and running tasks, memory, free disk per mount,
 * CPU load and utilisation, GPU free memory where known, and the library's health.
 * @module
 */
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism, hostname, uptime } from 'node:os';
import { z } from 'zod';
import { cpuUtilisation, parseLoadavg, parseProcStat, type CpuTimes, type LoadAverages } from '../aggregate/loadavg.js';
import { validate } from '../errors/validate.js';
import { TASK_STATES } from '../task/states.js';

const Triple = z.object({ one: z.number(), five: z.number(), fifteen: z.number() });

/** Health levels, best first. */
export const HEALTH_LEVELS = ['ok', 'degraded', 'unhealthy'] as const;
/** A health level. */
export type HealthLevel = (typeof HEALTH_LEVELS)[number];
/** Zod schema of {@link HealthLevel}. */
export const HealthLevelSchema: z.ZodType<HealthLevel> = z.enum(HEALTH_LEVELS);

/** 1, 5 and 15 minute averages. */
export interface StatusTriple {
  /** 1-minute average. */
  one: number;
  /** 5-minute average. */
  five: number;
  /** 15-minute average. */
  fifteen: number;
}

/** A running (or starting) task. */
export interface RunningTask {
  /** Task id. */
  id: string;
  /** Task kind. */
  kind?: string;
  /** Task labels. */
  labels?: Record<string, string>;
  /** Time since it started running. */
  runningForMs?: number;
}

/** Task counts and running tasks. */
export interface TaskSummary {
  /** Tasks known to the provider. */
  total: number;
  /** Count per state (every task state present, zero-filled). */
  byState: Record<string, number>;
  /** Tasks in `starting` or `running`. */
  running: RunningTask[];
}

/** Memory from /proc/meminfo, bytes. */
export interface MemoryStatus {
  /** `MemTotal`. */
  totalBytes: number;
  /** `MemAvailable`. */
  availableBytes: number;
  /** `MemFree`. */
  freeBytes: number;
  /** available / total. */
  availableRatio: number;
}

/** One filesystem (fs.statfs), bytes. */
export interface DiskStatus {
  /** The path asked for. */
  path: string;
  /** `blocks * bsize`. */
  totalBytes: number;
  /** `bfree * bsize`. */
  freeBytes: number;
  /** `bavail * bsize` (what unprivileged writers get). */
  availableBytes: number;
  /** available / total. */
  availableRatio: number;
  /** Why statfs failed, when it did (sizes are then 0). */
  error?: string;
}

/** CPU figures. */
export interface CpuStatus {
  /** CPUs. */
  cores: number;
  /** Utilisation 0..1 since the previous call (null when unknown). */
  utilisation: number | null;
  /** The kernel's /proc/loadavg. */
  load: StatusTriple;
  /** Damped utilisation from a load sampler, when given. */
  utilisationAvg?: StatusTriple;
  /** Run-queue length from a load sampler, when given. */
  runQueue?: number;
}

/** One GPU as a GPU provider reports it. */
export interface GpuInfo {
  /** Device index. */
  index: number;
  /** Device name. */
  name?: string;
  /** Device memory, bytes. */
  memoryTotalBytes?: number;
  /** Free device memory, bytes. */
  memoryFreeBytes?: number;
  /** Utilisation 0..1. */
  utilisation?: number;
}

/** Overall health. */
export interface HealthStatus {
  /** Worst level found. */
  status: HealthLevel;
  /** Why, for anything but ok. */
  reasons: string[];
}

/** What {@link NodeStatusProvider.get} returns (and the HTTP handler serves). */
export interface NodeStatus {
  /** Wall-clock time of the status, ms since the epoch. */
  timestamp: number;
  /** `os.hostname()`. */
  hostname: string;
  /** System uptime in seconds. */
  uptimeSec: number;
  /** Overall health with the reasons for anything but `ok`. */
  health: HealthStatus;
  /** Task counts by state and the running tasks; `null` without a task provider. */
  tasks: TaskSummary | null;
  /** From /proc/meminfo. */
  memory: MemoryStatus;
  /** One entry per mount of interest. */
  disks: DiskStatus[];
  /** CPU figures. */
  cpu: CpuStatus;
  /** GPUs where a GPU provider knows them; `null` without a provider. */
  gpus: GpuInfo[] | null;
}

/** Zod schema of {@link NodeStatus}. */
export const NodeStatusSchema: z.ZodType<NodeStatus> = z.object({
  timestamp: z.number(),
  hostname: z.string(),
  uptimeSec: z.number(),
  health: z.object({ status: z.enum(HEALTH_LEVELS), reasons: z.array(z.string()) }),
  tasks: z
    .object({
      total: z.number().int(),
      byState: z.record(z.string(), z.number().int()),
      running: z.array(
        z.object({ id: z.string(), kind: z.string().optional(), labels: z.record(z.string(), z.string()).optional(), runningForMs: z.number().optional() }),
      ),
    })
    .nullable(),
  memory: z.object({ totalBytes: z.number(), availableBytes: z.number(), freeBytes: z.number(), availableRatio: z.number() }),
  disks: z.array(
    z.object({
      path: z.string(),
      totalBytes: z.number(),
      freeBytes: z.number(),
      availableBytes: z.number(),
      availableRatio: z.number(),
      error: z.string().optional(),
    }),
  ),
  cpu: z.object({
    cores: z.number().int(),
    utilisation: z.number().nullable(),
    load: Triple,
    utilisationAvg: Triple.optional(),
    runQueue: z.number().optional(),
  }),
  gpus: z
    .array(
      z.object({
        index: z.number().int(),
        name: z.string().optional(),
        memoryTotalBytes: z.number().optional(),
        memoryFreeBytes: z.number().optional(),
        utilisation: z.number().optional(),
      }),
    )
    .nullable(),
});

/** A task as the status needs it; `TaskQueue.list()` records fit. */
export interface TaskLike {
  /** Task id. */
  id: string;
  /** Task kind. */
  kind?: string;
  /** Current state. */
  state: string;
  /** Labels. */
  labels?: Record<string, string>;
  /** Timings (ms since the epoch). */
  timings?: TaskTimings;
}

/** The timings the status reads from a task. */
export interface TaskTimings {
  /** When the attempt started. */
  startedAt?: number;
  /** When it reached `running`. */
  runningAt?: number;
}

/** Anything that lists tasks (the in-process `TaskQueue` does). */
export interface TaskListProvider {
  /** Current tasks. */
  list(): readonly TaskLike[] | Promise<readonly TaskLike[]>;
}

/** One health check's verdict. */
export interface HealthCheckResult {
  /** Level. */
  status: HealthLevel;
  /** Why, when not ok. */
  reason?: string;
}

/** A named health check. */
export type HealthCheck = () => HealthCheckResult | HealthCheckResult[] | Promise<HealthCheckResult | HealthCheckResult[]>;

const fn = <T>(what: string) => z.custom<T>((v) => typeof v === 'function', `${what} must be a function`);
const ThresholdSchema = z.object({ degraded: z.number().min(0).max(1), unhealthy: z.number().min(0).max(1) }).strict();

/** Ratio thresholds: below `degraded` the node is degraded, below `unhealthy` unhealthy. */
export interface RatioThresholds {
  /** Degraded below this ratio. */
  degraded: number;
  /** Unhealthy below this ratio. */
  unhealthy: number;
}

/** Something with the current load averages (a `LoadAverageSampler`). */
export interface LoadSource {
  /** Current averages. */
  current(): LoadAverages;
}

/** Options of {@link createNodeStatus}. */
export interface NodeStatusOptions {
  /** Task source, e.g. a `TaskQueue`. */
  tasks?: TaskListProvider;
  /** Paths whose filesystems to report (default `['/']`). */
  mounts?: string[];
  /** GPU provider (e.g. `async () => gpuInfoFromNvml(await sampleNvml())`). */
  gpus?: () => Promise<GpuInfo[]> | GpuInfo[];
  /** A running load-average sampler (smoothtask/aggregate) for damped CPU utilisation. */
  load?: LoadSource;
  /** Extra health checks (library components, the host service's own). */
  checks?: HealthCheck[];
  /** Available-memory ratio thresholds (default degraded 0.1, unhealthy 0.02). */
  memory?: RatioThresholds;
  /** Available-disk ratio thresholds per mount (default degraded 0.1, unhealthy 0.02). */
  disk?: RatioThresholds;
  /** When there is no earlier reading, sample CPU utilisation over this many ms (default 100). */
  cpuSampleMs?: number;
  /** Root of procfs (tests). */
  procRoot?: string;
}

/** Zod schema of {@link NodeStatusOptions}; parsing fills the defaults. */
export const NodeStatusOptionsSchema: z.ZodType<Required<Omit<NodeStatusOptions, 'tasks' | 'gpus' | 'load'>> & Pick<NodeStatusOptions, 'tasks' | 'gpus' | 'load'>, NodeStatusOptions> = z
  .object({
    tasks: z.custom<TaskListProvider>((v) => !!v && typeof (v as TaskListProvider).list === 'function', 'needs list()').optional(),
    mounts: z.array(z.string().min(1)).default(['/']),
    gpus: fn<() => Promise<GpuInfo[]> | GpuInfo[]>('gpus').optional(),
    load: z.custom<LoadSource>((v) => !!v && typeof (v as { current?: unknown }).current === 'function', 'needs current()').optional(),
    checks: z.array(fn<HealthCheck>('check')).default([]),
    memory: ThresholdSchema.default({ degraded: 0.1, unhealthy: 0.02 }),
    disk: ThresholdSchema.default({ degraded: 0.1, unhealthy: 0.02 }),
    cpuSampleMs: z.number().int().min(0).max(5000).default(100),
    procRoot: z.string().default('/proc'),
  })
  .strict();

/** Produces {@link NodeStatus} on demand. */
export interface NodeStatusProvider {
  /** Collects the status now (a few file reads and statfs calls). */
  get(): Promise<NodeStatus>;
}

/** Parses /proc/meminfo into bytes. */
export function parseMeminfo(text: string): Omit<MemoryStatus, 'availableRatio'> {
  const kb = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  };
  const total = kb('MemTotal');
  const free = kb('MemFree');
  let avail = kb('MemAvailable');
  // kernels before 3.14 lack MemAvailable: approximate with free + page cache
  if (Number.isNaN(avail)) avail = free + (kb('Cached') || 0) + (kb('Buffers') || 0);
  return { totalBytes: total, availableBytes: avail, freeBytes: free };
}

const worse = (a: HealthLevel, b: HealthLevel): HealthLevel => (HEALTH_LEVELS.indexOf(a) >= HEALTH_LEVELS.indexOf(b) ? a : b);

/**
 * Creates a status provider. CPU utilisation is measured between consecutive `get()` calls
 * (the first call samples for `cpuSampleMs`).
 *
 * @example
 * ```ts
 * const status = createNodeStatus({ tasks: queue, mounts: ['/', '/var/lib/docker'] });
 * http.createServer(createStatusHandler(status)).listen(8080, '127.0.0.1');
 * ```
 */
export function createNodeStatus(options: NodeStatusOptions = {}): NodeStatusProvider {
  const o = validate(NodeStatusOptionsSchema, options, 'node status options');
  let prevCpu: CpuTimes | undefined;
  const readCpu = async () => parseProcStat(await readFile(`${o.procRoot}/stat`, 'utf8'));

  return {
    async get(): Promise<NodeStatus> {
      const reasons: string[] = [];
      let level: HealthLevel = 'ok';
      const flag = (l: HealthLevel, reason: string) => {
        if (l === 'ok') return;
        level = worse(level, l);
        reasons.push(reason);
      };

      // CPU
      let stat = await readCpu();
      if (!prevCpu && o.cpuSampleMs > 0) {
        prevCpu = stat.cpu;
        await new Promise((r) => setTimeout(r, o.cpuSampleMs));
        stat = await readCpu();
      }
      const util = prevCpu ? cpuUtilisation(prevCpu, stat.cpu) : Number.NaN;
      prevCpu = stat.cpu;
      const loadavg = parseLoadavg(await readFile(`${o.procRoot}/loadavg`, 'utf8'));
      const sampled = o.load?.current();

      // memory
      const mem = parseMeminfo(await readFile(`${o.procRoot}/meminfo`, 'utf8'));
      const memRatio = mem.availableBytes / mem.totalBytes;
      if (memRatio < o.memory.unhealthy) flag('unhealthy', `memory: ${(memRatio * 100).toFixed(1)}% available`);
      else if (memRatio < o.memory.degraded) flag('degraded', `memory: ${(memRatio * 100).toFixed(1)}% available`);

      // disks
      const disks = await Promise.all(
        o.mounts.map(async (path) => {
          try {
            const s = await statfs(path);
            const total = s.blocks * s.bsize;
            const avail = s.bavail * s.bsize;
            const ratio = total > 0 ? avail / total : 0;
            if (ratio < o.disk.unhealthy) flag('unhealthy', `disk ${path}: ${(ratio * 100).toFixed(1)}% available`);
            else if (ratio < o.disk.degraded) flag('degraded', `disk ${path}: ${(ratio * 100).toFixed(1)}% available`);
            return { path, totalBytes: total, freeBytes: s.bfree * s.bsize, availableBytes: avail, availableRatio: ratio };
          } catch (e) {
            flag('degraded', `disk ${path}: ${(e as Error).message}`);
            return { path, totalBytes: 0, freeBytes: 0, availableBytes: 0, availableRatio: 0, error: (e as Error).message };
          }
        }),
      );

      // tasks
      let tasks: NodeStatus['tasks'] = null;
      if (o.tasks) {
        try {
          const list = await o.tasks.list();
          const byState: Record<string, number> = Object.fromEntries(TASK_STATES.map((s) => [s, 0]));
          const now = Date.now();
          const running: RunningTask[] = [];
          for (const t of list) {
            byState[t.state] = (byState[t.state] ?? 0) + 1;
            if (t.state === 'running' || t.state === 'starting') {
              const since = t.timings?.runningAt ?? t.timings?.startedAt;
              running.push({
                id: t.id,
                ...(t.kind !== undefined ? { kind: t.kind } : {}),
                ...(t.labels !== undefined ? { labels: { ...t.labels } } : {}),
                ...(since !== undefined ? { runningForMs: Math.max(0, now - since) } : {}),
              });
            }
          }
          tasks = { total: list.length, byState, running };
        } catch (e) {
          flag('degraded', `tasks: ${(e as Error).message}`);
        }
      }

      // GPUs
      let gpus: NodeStatus['gpus'] = null;
      if (o.gpus) {
        try {
          gpus = [...(await o.gpus())];
        } catch (e) {
          flag('degraded', `gpus: ${(e as Error).message}`);
          gpus = [];
        }
      }

      // extra checks
      for (const check of o.checks) {
        try {
          const r = await check();
          for (const x of Array.isArray(r) ? r : [r]) flag(x.status, x.reason ?? 'check failed');
        } catch (e) {
          flag('degraded', `check threw: ${(e as Error).message}`);
        }
      }

      return {
        timestamp: Date.now(),
        hostname: hostname(),
        uptimeSec: uptime(),
        health: { status: level, reasons },
        tasks,
        memory: { ...mem, availableRatio: memRatio },
        disks,
        cpu: {
          cores: stat.cpus || availableParallelism(),
          utilisation: Number.isNaN(util) ? (sampled?.cpu.current ?? null) : util,
          load: loadavg.values,
          ...(sampled ? { utilisationAvg: { one: sampled.cpu.one, five: sampled.cpu.five, fifteen: sampled.cpu.fifteen }, runQueue: sampled.runQueue.current } : {}),
        },
        gpus,
      };
    },
  };
}

/** One-shot convenience: `createNodeStatus(options).get()`. */
export function getNodeStatus(options: NodeStatusOptions = {}): Promise<NodeStatus> {
  return createNodeStatus(options).get();
}

/** The part of an NVML sample (`sampleNvml()` in smoothtask/metrics) the status needs. */
export interface NvmlSampleLike {
  /** Devices; empty on a host without NVIDIA GPUs. */
  devices: readonly NvmlDeviceLike[];
}

/** The part of an NVML device the status needs. */
export interface NvmlDeviceLike {
  /** Device index. */
  index: number;
  /** Device name. */
  name: string;
  /** Device memory, bytes. */
  memoryTotalBytes: number | null;
  /** Free device memory, bytes. */
  memoryFreeBytes: number | null;
  /** GPU utilisation, percent. */
  utilizationGpuPercent: number | null;
}

/**
 * Maps an NVML sample to the status' GPU entries:
 * `createNodeStatus({ gpus: async () => gpuInfoFromNvml(await sampleNvml()) })`.
 */
export function gpuInfoFromNvml(sample: NvmlSampleLike): GpuInfo[] {
  return sample.devices.map((d) => ({
    index: d.index,
    name: d.name,
    ...(d.memoryTotalBytes !== null ? { memoryTotalBytes: d.memoryTotalBytes } : {}),
    ...(d.memoryFreeBytes !== null ? { memoryFreeBytes: d.memoryFreeBytes } : {}),
    ...(d.utilizationGpuPercent !== null ? { utilisation: d.utilizationGpuPercent / 100 } : {}),
  }));
}

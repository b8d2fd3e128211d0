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

/** Health levels, worst last. */
export const HealthLevelSchema = z.enum(['ok', 'degraded', 'unhealthy']);
/** A health level. */
export type HealthLevel = z.infer<typeof HealthLevelSchema>;

/** Schema of what {@link NodeStatusProvider.get} returns (and the HTTP handler serves). */
export const NodeStatusSchema = z.object({
  /** Wall-clock time of the status, ms since the epoch. */
  timestamp: z.number(),
  /** `os.hostname()`. */
  hostname: z.string(),
  /** System uptime in seconds. */
  uptimeSec: z.number(),
  /** Overall health with the reasons for anything but `ok`. */
  health: z.object({ status: HealthLevelSchema, reasons: z.array(z.string()) }),
  /** Task counts by state and the running tasks; `null` without a task provider. */
  tasks: z
    .object({
      total: z.number().int(),
      byState: z.record(z.string(), z.number().int()),
      running: z.array(
        z.object({ id: z.string(), kind: z.string().optional(), labels: z.record(z.string(), z.string()).optional(), runningForMs: z.number().optional() }),
      ),
    })
    .nullable(),
  /** From /proc/meminfo. */
  memory: z.object({ totalBytes: z.number(), availableBytes: z.number(), freeBytes: z.number(), availableRatio: z.number() }),
  /** One entry per mount of interest (fs.statfs). */
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
  /** CPU: cores, current utilisation (0..1), kernel load averages, and damped utilisation when a sampler is given. */
  cpu: z.object({
    cores: z.number().int(),
    utilisation: z.number().nullable(),
    load: Triple,
    utilisationAvg: Triple.optional(),
    runQueue: z.number().optional(),
  }),
  /** GPUs with their free memory where a GPU provider knows it; `null` without a provider. */
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
/** The node status. */
export type NodeStatus = z.infer<typeof NodeStatusSchema>;

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
  timings?: { startedAt?: number; runningAt?: number };
}

/** Anything that lists tasks (the in-process `TaskQueue` does). */
export interface TaskListProvider {
  /** Current tasks. */
  list(): readonly TaskLike[] | Promise<readonly TaskLike[]>;
}

/** GPU memory as a GPU provider reports it. */
export type GpuInfo = NonNullable<NodeStatus['gpus']>[number];

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

/** Options of {@link createNodeStatus}. */
export const NodeStatusOptionsSchema = z
  .object({
    /** Task source, e.g. a `TaskQueue`. */
    tasks: z.custom<TaskListProvider>((v) => !!v && typeof (v as TaskListProvider).list === 'function', 'needs list()').optional(),
    /** Paths whose filesystems to report (default `['/']`). */
    mounts: z.array(z.string().min(1)).default(['/']),
    /** GPU provider (e.g. wrapping `sampleNvml` from smoothtask/metrics). */
    gpus: fn<() => Promise<GpuInfo[]> | GpuInfo[]>('gpus').optional(),
    /** A running load-average sampler (smoothtask/aggregate) for damped CPU utilisation. */
    load: z.custom<{ current(): LoadAverages }>((v) => !!v && typeof (v as { current?: unknown }).current === 'function', 'needs current()').optional(),
    /** Extra health checks (library components, the host service's own). */
    checks: z.array(fn<HealthCheck>('check')).default([]),
    /** Available-memory ratio below which the node is degraded / unhealthy. */
    memory: ThresholdSchema.default({ degraded: 0.1, unhealthy: 0.02 }),
    /** Available-disk ratio (per mount) below which the node is degraded / unhealthy. */
    disk: ThresholdSchema.default({ degraded: 0.1, unhealthy: 0.02 }),
    /** When there is no earlier reading, sample CPU utilisation over this many ms (default 100). */
    cpuSampleMs: z.number().int().min(0).max(5000).default(100),
    /** Root of procfs (tests). */
    procRoot: z.string().default('/proc'),
  })
  .strict();
/** Options as written. */
export type NodeStatusOptions = z.input<typeof NodeStatusOptionsSchema>;

/** Produces {@link NodeStatus} on demand. */
export interface NodeStatusProvider {
  /** Collects the status now (a few file reads and statfs calls). */
  get(): Promise<NodeStatus>;
}

/** Parses /proc/meminfo into bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number; freeBytes: number } {
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

const worse = (a: HealthLevel, b: HealthLevel): HealthLevel => (HealthLevelSchema.options.indexOf(a) >= HealthLevelSchema.options.indexOf(b) ? a : b);

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
          const running: NonNullable<NodeStatus['tasks']>['running'] = [];
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
  devices: ReadonlyArray<{
    index: number;
    name: string;
    memoryTotalBytes: number | null;
    memoryFreeBytes: number | null;
    utilizationGpuPercent: number | null;
  }>;
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

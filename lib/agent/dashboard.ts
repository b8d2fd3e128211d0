/**
 * The dashboard's data: one feed per agent that turns the node services and the queue into
 * the events of `GET /v1/dashboard/stream` (docs/dashboard.md), computed once per interval
 * however many pages are open, and only while one is.
 *
 * Everything comes from the agent's read side (node status, metric families, alert engine,
 * queue records): the feed never touches a task or an executor, so a saturated queue cannot
 * block it beyond the event loop itself.
 * @module
 */
import { hostname } from 'node:os';
import type { TaskQueue } from '../task/queue.js';
import type { TaskRecord } from '../task/types.js';
import type { NodeServices } from './node.js';

/** Hardware that may be absent: `{ present: false, reason }` or its readings. */
export type HardwareInfo = { present: false; reason: string } | { present: true; items: Array<{ label: string; value: number; unit: string }> };

/** `event: node`: the node this interval. `null` fields are not measured on this host. */
export interface NodeEvent {
  /** Epoch ms. */
  at: number;
  /** Busy share of all cores, 0–100 (`null` before the second reading). */
  cpu: { cores: number; busyPct: number | null };
  memory: { totalBytes: number; usedBytes: number; availableBytes: number };
  load: { one: number; five: number; fifteen: number };
  /** Run-queue latency of this interval (log2 bucket upper bounds), `null` without the eBPF cpu family. */
  runqLatencyUs: { p50: number; p99: number } | null;
  /** The busiest processes this interval (100 = one core), at most 10. */
  processes: Array<{ pid: number; comm: string; cpuPct: number; rssBytes: number | null }>;
  /** Docker containers' CPU this interval, `null` without the cpu family. */
  containers: Array<{ id: string; name: string; cpuPct: number }> | null;
  tcp: { connections: number } | null;
  disks: Array<{ name: string; readBytesPerSec: number; writeBytesPerSec: number }> | null;
  hardware: { gpu: HardwareInfo; thermal: HardwareInfo; power: HardwareInfo };
  /** Backend of each open family (`ebpf`, `procfs`). */
  backends: Record<string, string>;
}

/** A row of the tasks table. */
export interface TaskRow {
  id: string;
  kind: string;
  state: string;
  labels: Record<string, string>;
  attempt: number;
  exitCode: number | null;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
}

/** `event: tasks`: the whole table (`full`) or what changed. */
export interface TasksEvent {
  full: boolean;
  items: TaskRow[];
  removed: string[];
}

/** `event: alerts`: every alert the engine holds. */
export interface AlertsEvent {
  items: Array<{ rule: string; state: string; labels: Record<string, string>; value: number; activeAt: number; firedAt?: number; resolvedAt?: number }>;
}

/** `event: ebpf`: what the agent has loaded. */
export interface EbpfEvent {
  available: boolean;
  reason?: string;
  programs: Array<{ id: number; name: string; type: string; runCount: number | null; runTimeNs: number | null }>;
  maps: Array<{ id: number; name: string; type: string; bytes: number }>;
  cache: { hits: number; misses: number; entries: number; bytes: number; evictions: number } | null;
  droppedEvents: number | null;
}

/** One event of the stream. */
export type DashboardEvent =
  | { event: 'node'; data: NodeEvent }
  | { event: 'tasks'; data: TasksEvent }
  | { event: 'alerts'; data: AlertsEvent }
  | { event: 'ebpf'; data: EbpfEvent };

/** Most tasks sent in a full table (the newest). */
export const FULL_TABLE_MAX = 2000;
/** eBPF facts change slowly: sent every this many intervals. */
const EBPF_EVERY = 5;

/** The table row of a task record. */
export function taskRow(t: Readonly<TaskRecord>): TaskRow {
  const row: TaskRow = { id: t.id, kind: t.kind, state: t.state, labels: { ...t.labels }, attempt: t.attempt, exitCode: t.exitCode, createdAt: t.timings.createdAt };
  if (t.timings.startedAt !== undefined) row.startedAt = t.timings.startedAt;
  if (t.timings.endedAt !== undefined) row.finishedAt = t.timings.endedAt;
  return row;
}

/** Percentile (upper bucket bound) of a log2 histogram's counts. */
function log2Percentile(slots: number[], q: number): number {
  const total = slots.reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let i = 0; i < slots.length; i++) {
    acc += slots[i]!;
    if (acc >= q * total) return 2 ** (i + 1);
  }
  return 2 ** slots.length;
}

interface Fam {
  processes?: Array<{ tgid: number; comm?: string; cpuNs: number | string; rssBytes?: number | string; startNs?: number | string }>;
  cgroups?: Array<{ cgroupId: string; path: string; cpuNs: number | string }>;
  runqLatency?: { slots: Array<number | string> } | null;
  connections?: unknown[];
  devices?: Array<{ name: string; readBytes: number | string; writeBytes: number | string }>;
}

/**
 * Computes the dashboard events once per `intervalMs` while at least one subscriber listens.
 * @internal
 */
export class DashboardFeed {
  readonly intervalMs: number;
  readonly hostname = hostname();
  readonly #node: NodeServices;
  readonly #queue: TaskQueue;
  readonly #subs = new Set<(e: DashboardEvent, id: number) => void>();
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  #tick = 0;
  #busy = false;
  #dirty = new Set<string>();
  #offTransition: (() => void) | undefined;
  #lastAlerts = '';
  #prev: { at: number; monoNs: number; proc: Map<number, number>; cg: Map<string, number>; runq: number[] | undefined; disk: Map<string, [number, number]> } | undefined;
  /** The latest event of each kind, for a page that connects between two intervals. */
  readonly #latest = new Map<string, DashboardEvent>();

  /** A feed of `node`'s and `queue`'s events every `intervalMs`. */
  constructor(node: NodeServices, queue: TaskQueue, intervalMs = 1000) {
    this.#node = node;
    this.#queue = queue;
    this.intervalMs = intervalMs;
  }

  /** The id of the last event sent. */
  get lastId(): number {
    return this.#seq;
  }

  /** The tasks table as it is now (the newest {@link FULL_TABLE_MAX}). */
  fullTable(): TasksEvent {
    const all = this.#queue.list();
    const items = all.length > FULL_TABLE_MAX ? [...all].sort((a, b) => b.timings.createdAt - a.timings.createdAt).slice(0, FULL_TABLE_MAX) : all;
    return { full: true, items: items.map(taskRow), removed: [] };
  }

  /** The latest node, alerts and eBPF events (sent to a page when it connects). */
  latest(): DashboardEvent[] {
    return [...this.#latest.values()];
  }

  /** Adds a listener; the feed runs while there is one. Returns the unsubscribe function. */
  subscribe(fn: (e: DashboardEvent, id: number) => void): () => void {
    this.#subs.add(fn);
    if (!this.#timer) this.#start();
    return () => {
      this.#subs.delete(fn);
      if (this.#subs.size === 0) this.#stop();
    };
  }

  /** Stops the feed (the agent closes). */
  close(): void {
    this.#subs.clear();
    this.#stop();
  }

  #start(): void {
    this.#offTransition = this.#queue.onTransition((e) => this.#dirty.add(e.task.id));
    this.#timer = setInterval(() => void this.#run(), this.intervalMs);
    this.#timer.unref();
    void this.#run();
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#offTransition?.();
    this.#offTransition = undefined;
    this.#prev = undefined;
    this.#latest.clear();
    this.#lastAlerts = '';
  }

  #emit(e: DashboardEvent): void {
    const id = ++this.#seq;
    if (e.event !== 'tasks') this.#latest.set(e.event, e);
    for (const fn of [...this.#subs]) {
      try {
        fn(e, id);
      } catch {
        /* a failing subscriber is its own business */
      }
    }
  }

  async #run(): Promise<void> {
    if (this.#busy || !this.#timer) return; // a slow read is skipped, not stacked
    this.#busy = true;
    try {
      const tick = this.#tick++;
      if (this.#dirty.size) {
        const ids = [...this.#dirty];
        this.#dirty.clear();
        const items: TaskRow[] = [];
        const removed: string[] = [];
        for (const id of ids) {
          const t = this.#queue.get(id);
          if (t) items.push(taskRow(t));
          else removed.push(id);
        }
        this.#emit({ event: 'tasks', data: { full: false, items, removed } });
      }
      const node = await this.#nodeEvent().catch(() => undefined);
      if (node && this.#timer) this.#emit({ event: 'node', data: node });
      const alerts: AlertsEvent = {
        items: this.#node.alerts.alerts().map((a) => ({
          rule: a.rule,
          state: a.state,
          labels: { ...a.labels },
          value: a.value,
          activeAt: a.activeAt,
          ...(a.firedAt !== undefined ? { firedAt: a.firedAt } : {}),
          ...(a.resolvedAt !== undefined ? { resolvedAt: a.resolvedAt } : {}),
        })),
      };
      const key = JSON.stringify(alerts);
      if (key !== this.#lastAlerts || tick === 0) {
        this.#lastAlerts = key;
        this.#emit({ event: 'alerts', data: alerts });
      }
      if (tick % EBPF_EVERY === 0) {
        const e = await this.#ebpfEvent().catch(() => undefined);
        if (e && this.#timer) this.#emit({ event: 'ebpf', data: e });
      }
    } finally {
      this.#busy = false;
    }
  }

  async #nodeEvent(): Promise<NodeEvent> {
    // A fresh read each interval (a cached one would make this interval's differences zero).
    // `monoNs` is taken before the read: a process that started after it is new in the next one.
    const monoNs = Number(process.hrtime.bigint());
    const [status, m] = await Promise.all([this.#node.status.get(), this.#node.metrics(Math.min(250, this.intervalMs / 4))]);
    const at = m.at;
    const fams = m.families as Record<string, Fam | undefined>;
    const prev = this.#prev;
    const dtNs = prev ? Math.max(1, (at - prev.at) * 1e6) : 0;
    const num = (v: number | string | undefined) => (v === undefined ? 0 : Number(v));

    // Processes: the process family (has RSS), else the cpu family.
    const procSrc = fams.process?.processes ?? fams.cpu?.processes;
    const proc = new Map<number, number>();
    const processes: NodeEvent['processes'] = [];
    if (procSrc) {
      for (const p of procSrc) {
        const ns = num(p.cpuNs);
        proc.set(p.tgid, ns);
        if (!prev) continue;
        let before = prev.proc.get(p.tgid);
        // A process first seen now that started after the previous read (the process family knows
        // its start): all its CPU time is of this interval, so a new CPU burner shows in its first
        // interval rather than its second. Other unseen processes wait for a second reading.
        if (before === undefined && p.startNs !== undefined && Number(p.startNs) >= prev.monoNs) before = 0;
        if (before === undefined) continue;
        processes.push({ pid: p.tgid, comm: p.comm ?? String(p.tgid), cpuPct: Math.max(0, ((ns - before) / dtNs) * 100), rssBytes: p.rssBytes === undefined ? null : num(p.rssBytes) });
      }
      processes.sort((a, b) => b.cpuPct - a.cpuPct);
      processes.splice(10);
      for (const p of processes) p.cpuPct = Math.round(p.cpuPct * 10) / 10;
    }

    // Containers: Docker's cgroups (cgroupfs: /docker/<id>; systemd: docker-<id>.scope).
    const cg = new Map<string, number>();
    let containers: NodeEvent['containers'] = null;
    if (fams.cpu?.cgroups) {
      containers = [];
      for (const c of fams.cpu.cgroups) {
        const mm = /docker[/-]([0-9a-f]{12,64})/.exec(c.path);
        if (!mm) continue;
        const ns = num(c.cpuNs);
        cg.set(c.cgroupId, ns);
        const before = prev?.cg.get(c.cgroupId);
        if (before === undefined) continue;
        containers.push({ id: mm[1]!, name: mm[1]!.slice(0, 12), cpuPct: Math.round(Math.max(0, ((ns - before) / dtNs) * 100) * 10) / 10 });
      }
      containers.sort((a, b) => b.cpuPct - a.cpuPct);
    }

    // Run-queue latency of this interval: the difference of the cumulative histogram.
    let runqLatencyUs: NodeEvent['runqLatencyUs'] = null;
    const slots = fams.cpu?.runqLatency?.slots.map(Number);
    if (slots && prev?.runq) {
      const d = slots.map((v, i) => Math.max(0, v - (prev.runq![i] ?? 0)));
      if (d.some((v) => v > 0)) runqLatencyUs = { p50: log2Percentile(d, 0.5), p99: log2Percentile(d, 0.99) };
      else runqLatencyUs = { p50: 0, p99: 0 };
    }

    const disk = new Map<string, [number, number]>();
    let disks: NodeEvent['disks'] = null;
    if (fams.disk?.devices) {
      disks = [];
      for (const dv of fams.disk.devices) {
        const r = num(dv.readBytes);
        const w = num(dv.writeBytes);
        disk.set(dv.name, [r, w]);
        const b = prev?.disk.get(dv.name);
        if (!b) continue;
        const sec = dtNs / 1e9;
        disks.push({ name: dv.name, readBytesPerSec: Math.round(Math.max(0, r - b[0]) / sec), writeBytesPerSec: Math.round(Math.max(0, w - b[1]) / sec) });
      }
    }
    this.#prev = { at, monoNs, proc, cg, runq: slots, disk };

    const absent = (family: string): HardwareInfo => ({
      present: false,
      reason: m.errors[family] ?? (m.enabled ? `the '${family}' metric family is not enabled (metrics.families)` : 'metrics are disabled'),
    });
    type Item = { label: string; value: number; unit: string };
    const items = (list: Array<[string, number | null | undefined, string]>): Item[] =>
      list.filter((x): x is [string, number, string] => typeof x[1] === 'number').map(([label, value, unit]) => ({ label, value, unit }));
    const gpuF = fams.gpu as { nvml?: { available: boolean; reason: string; devices: Array<Record<string, number | string | null>> } } | undefined;
    const thermalF = fams.thermal as { zones?: Array<{ name: string; type: string; temperatureC: number | null }> } | undefined;
    const powerF = fams.power as { rapl?: Array<{ name: string; watts: number | null }>; hwmonPower?: Array<{ chip: string; label: string; watts: number | null }> } | undefined;
    const gpu: HardwareInfo = !gpuF
      ? absent('gpu')
      : !gpuF.nvml?.available || !gpuF.nvml.devices.length
        ? { present: false, reason: gpuF.nvml?.reason || 'no NVIDIA GPU (NVML) on this host' }
        : {
            present: true,
            items: gpuF.nvml.devices.flatMap((d) =>
              items([
                [`GPU ${d.index} ${d.name} utilisation`, d.utilizationGpuPercent as number | null, '%'],
                [`GPU ${d.index} memory used`, d.memoryUsedBytes as number | null, 'bytes'],
                [`GPU ${d.index} temperature`, d.temperatureC as number | null, '°C'],
                [`GPU ${d.index} power`, d.powerWatts as number | null, 'W'],
              ]),
            ),
          };
    const zones = thermalF?.zones?.filter((z) => z.temperatureC !== null) ?? [];
    const thermal: HardwareInfo = !thermalF ? absent('thermal') : zones.length ? { present: true, items: items(zones.map((z) => [`${z.name} (${z.type})`, z.temperatureC, '°C'])) } : { present: false, reason: 'no thermal zone or sensor on this host' };
    const watts = [...(powerF?.rapl ?? []).map((r): [string, number | null, string] => [`RAPL ${r.name}`, r.watts, 'W']), ...(powerF?.hwmonPower ?? []).map((h): [string, number | null, string] => [`${h.chip} ${h.label}`, h.watts, 'W'])];
    const power: HardwareInfo = !powerF ? absent('power') : watts.length ? { present: true, items: items(watts) } : { present: false, reason: 'no power meter (RAPL, hwmon) on this host' };
    const hardware = { gpu, thermal, power };

    return {
      at,
      cpu: { cores: status.cpu.cores, busyPct: status.cpu.utilisation === null ? null : Math.round(status.cpu.utilisation * 1000) / 10 },
      memory: { totalBytes: status.memory.totalBytes, usedBytes: status.memory.totalBytes - status.memory.availableBytes, availableBytes: status.memory.availableBytes },
      load: { one: status.cpu.load.one, five: status.cpu.load.five, fifteen: status.cpu.load.fifteen },
      runqLatencyUs,
      processes,
      containers,
      tcp: fams.network?.connections ? { connections: fams.network.connections.length } : null,
      disks,
      hardware,
      backends: m.backends,
    };
  }

  async #ebpfEvent(): Promise<EbpfEvent> {
    const monitor = this.#node.monitor;
    const cache = await this.#node.programCache();
    const ebpfReaders = monitor ? [...monitor.readers].filter(([, r]) => r.backend === 'ebpf') : [];
    if (!ebpfReaders.length) {
      return { available: false, reason: cache.available ? 'no metric family runs on eBPF' : cache.reason, programs: [], maps: [], cache: null, droppedEvents: null };
    }
    const programs: EbpfEvent['programs'] = [];
    const maps: EbpfEvent['maps'] = [];
    let dropped = 0;
    let id = 0;
    for (const [family, r] of ebpfReaders) {
      const b = r as unknown as {
        programStats?: () => Record<string, { runTimeNs: number; runCount: number }>;
        mapMemory?: () => Record<string, number>;
        droppedEvents?: () => number;
      };
      try {
        for (const [name, s] of Object.entries(b.programStats?.() ?? {})) programs.push({ id: ++id, name: `${family}/${name}`, type: family, runCount: s.runCount, runTimeNs: s.runTimeNs });
        for (const [name, bytes] of Object.entries(b.mapMemory?.() ?? {})) maps.push({ id: ++id, name: `${family}/${name}`, type: family, bytes });
        dropped += b.droppedEvents?.() ?? 0;
      } catch {
        /* a reader closed meanwhile */
      }
    }
    return {
      available: true,
      programs,
      maps,
      cache: cache.available ? { hits: cache.hits, misses: cache.misses, entries: cache.entries, bytes: cache.bytes, evictions: cache.evictions } : null,
      droppedEvents: dropped,
    };
  }
}

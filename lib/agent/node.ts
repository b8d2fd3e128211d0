/**
 * The node side of the agent: status (the `smoothtask/status` contract), the metric monitor
 * (eBPF where permitted, procfs otherwise), the Prometheus registry, the alert engine and the
 * eBPF program cache statistics. `smoothtask/metrics` and `smoothtask/ebpf` are loaded only
 * when used, so the agent imports and runs without the native addon.
 * @module
 */
import { Gauge, Registry } from 'prom-client';
import { registerReader } from '../aggregate/prometheus.js';
import { createNodeStatus, type NodeStatusProvider } from '../status/status.js';
import { createStatusHandler, type StatusHandler } from '../status/http.js';
import { alertEngineCheck } from '../status/checks.js';
import { AlertEngine, type Alert } from '../notify/engine.js';
import type { Monitor } from '../metrics/monitor.js';
import { TASK_STATES } from '../task/states.js';
import type { TaskQueue } from '../task/queue.js';
import type { AgentConfig } from './config.js';

/** Statistics of the eBPF program cache, or `{ available: false, reason }` when eBPF is not in use. */
export type ProgramCacheInfo =
  | { available: false; reason: string }
  | { available: true; hits: number; misses: number; sharedInFlight: number; entries: number; bytes: number; evictions: number; loadTimeSavedMs: number };

/** JSON snapshot of the metric families (`GET /v1/node/metrics`). */
export interface MetricsSnapshot {
  /** Epoch ms of the read. */
  at: number;
  /** Whether a monitor runs (`metrics.enabled` and it opened). */
  enabled: boolean;
  /** Backend of each open family (`ebpf`, `procfs`, ...). */
  backends: Record<string, string>;
  /** Snapshot of each family (bigints as decimal strings). */
  families: Record<string, unknown>;
  /** Families that failed to open or to read, with why. */
  errors: Record<string, string>;
}

const jsonSafe = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));

/** The node services of an agent (created by `createAgent`). */
export class NodeServices {
  /** Node status provider (tasks from the queue, memory, disks, CPU, health checks). */
  readonly status: NodeStatusProvider;
  /** The `smoothtask/status` handler (200 / 503), status cached for 1 s. */
  readonly statusHandler: StatusHandler;
  /** The alert engine (rules from `config.alerts`, sources: the open metric families). */
  readonly alerts: AlertEngine;
  /** Prometheus registry served at `/metrics`: metric families plus the agent's task gauges. */
  readonly registry: Registry;
  /** The metric monitor, when `metrics.enabled` and it opened. */
  readonly monitor: Monitor | undefined;
  readonly #openErrors: Record<string, string>;
  readonly #closers: Array<() => unknown> = [];
  #snapshot: { at: number; p: Promise<MetricsSnapshot> } | undefined;

  private constructor(config: AgentConfig, queue: TaskQueue, alerts: AlertEngine, monitor: Monitor | undefined, openErrors: Record<string, string>) {
    this.alerts = alerts;
    this.monitor = monitor;
    this.#openErrors = openErrors;
    this.status = createNodeStatus({
      tasks: { list: () => queue.list() },
      mounts: [...new Set(['/', config.dataDir])],
      checks: [alertEngineCheck(alerts)],
    });
    this.statusHandler = createStatusHandler(this.status, { cacheMs: 1000 });
    this.registry = new Registry();
    new Gauge({
      name: 'smoothtask_agent_tasks',
      help: 'Tasks known to the agent, by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(TASK_STATES.map((s) => [s, 0]));
        for (const t of queue.list()) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'smoothtask_agent_queue',
      help: 'Queue counters: active attempts, pending and retrying tasks',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        const s = queue.stats();
        this.set({ kind: 'active' }, s.active);
        this.set({ kind: 'pending' }, s.pending);
        this.set({ kind: 'retrying' }, s.retrying);
      },
    });
  }

  /** Opens the node services for `config`: the monitor per `config.metrics` (failures are recorded, not fatal), alerts per `config.alerts`. */
  static async open(config: AgentConfig, queue: TaskQueue): Promise<NodeServices> {
    const alerts = new AlertEngine({ rules: config.alerts.rules as never, evaluationInterval: config.metrics.intervalMs });
    let monitor: Monitor | undefined;
    const openErrors: Record<string, string> = {};
    if (config.metrics.enabled) {
      try {
        // The index registers the built-in families (and loads nothing native until a family opens).
        const { createMonitor } = await import('../metrics/index.js');
        monitor = await createMonitor({ families: config.metrics.families, backend: config.metrics.backend });
        for (const [name, err] of monitor.failures) openErrors[name] = err.message;
      } catch (e) {
        openErrors.monitor = e instanceof Error ? e.message : String(e);
      }
    }
    const n = new NodeServices(config, queue, alerts, monitor, openErrors);
    if (monitor) {
      for (const [name, reader] of monitor.readers) {
        alerts.addSource(name, reader);
        await registerReader(n.registry, reader, { prefix: 'smoothtask' }).catch((e: unknown) => {
          openErrors[name] = `prometheus export: ${e instanceof Error ? e.message : String(e)}`;
        });
      }
      n.#closers.push(() => monitor!.close());
    }
    if (config.alerts.rules.length) alerts.start();
    n.#closers.unshift(() => alerts.close());
    return n;
  }

  /** Alerts now firing. */
  firing(): Alert[] {
    return this.alerts.alerts().filter((a) => a.state === 'firing');
  }

  /** A JSON snapshot of every open family (a snapshot younger than `maxAgeMs` is reused). */
  metrics(maxAgeMs = 1000): Promise<MetricsSnapshot> {
    if (this.#snapshot && Date.now() - this.#snapshot.at < maxAgeMs) return this.#snapshot.p;
    const at = Date.now();
    const p = (async (): Promise<MetricsSnapshot> => {
      const errors = { ...this.#openErrors };
      const backends: Record<string, string> = {};
      if (!this.monitor) return { at, enabled: false, backends, families: {}, errors };
      for (const [name, r] of this.monitor.readers) backends[name] = r.backend;
      const { snapshots, errors: readErrors } = await this.monitor.read();
      for (const [name, e] of Object.entries(readErrors)) errors[name] = e.message;
      return { at, enabled: true, backends, families: jsonSafe(snapshots) as Record<string, unknown>, errors };
    })();
    this.#snapshot = { at, p };
    p.catch(() => {
      if (this.#snapshot?.p === p) this.#snapshot = undefined;
    });
    return p;
  }

  /** The eBPF program cache statistics; `{ available: false }` unless a family runs on eBPF. */
  async programCache(): Promise<ProgramCacheInfo> {
    const ebpf = this.monitor ? [...this.monitor.readers.values()].some((r) => r.backend === 'ebpf') : false;
    if (!ebpf) return { available: false, reason: this.monitor ? 'no metric family runs on eBPF' : 'metrics are disabled' };
    const { programCache } = await import('../ebpf/cache.js');
    return { available: true, ...programCache.stats() };
  }

  /** Stops the alert engine and the monitor. */
  async close(): Promise<void> {
    for (const c of this.#closers.splice(0)) await Promise.resolve().then(c).catch(() => {});
  }
}

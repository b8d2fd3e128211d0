/**
 * The node side of the agent: status (the `smoothtask/status` contract), the metric monitor,
 * the alert engine and the eBPF program cache statistics.
 * @module
 */
import { createNodeStatus, type NodeStatusProvider } from '../status/status.js';
import { createStatusHandler, type StatusHandler } from '../status/http.js';
import { alertEngineCheck } from '../status/checks.js';
import { AlertEngine } from '../notify/engine.js';
import type { Alert } from '../notify/engine.js';
import type { TaskQueue } from '../task/queue.js';
import type { WebhookDispatcher } from '../webhook/dispatcher.js';
import type { AgentConfig } from './config.js';

/** Cache statistics of the eBPF program cache, or `{ available: false }` without eBPF. */
export type ProgramCacheInfo = { available: false; reason: string } | ({ available: true } & Record<string, unknown>);

/** The node services of an agent (created by `createAgent`). */
export class NodeServices {
  /** Node status provider (tasks from the queue, memory, disks, CPU, health checks). */
  readonly status: NodeStatusProvider;
  /** The `smoothtask/status` handler (200 / 503), status cached for 1 s. */
  readonly statusHandler: StatusHandler;
  /** The alert engine (rules from `config.alerts`). */
  readonly alerts: AlertEngine;
  readonly #closers: Array<() => unknown> = [];

  private constructor(config: AgentConfig, queue: TaskQueue, alerts: AlertEngine) {
    this.alerts = alerts;
    this.status = createNodeStatus({
      tasks: { list: () => queue.list() },
      mounts: ['/', config.dataDir],
      checks: [alertEngineCheck(alerts)],
    });
    this.statusHandler = createStatusHandler(this.status, { cacheMs: 1000 });
  }

  /** Opens the node services for `config` (metrics per `config.metrics`, alerts per `config.alerts`). */
  static async open(config: AgentConfig, queue: TaskQueue, _webhooks: WebhookDispatcher): Promise<NodeServices> {
    const alerts = new AlertEngine({ rules: config.alerts.rules, evaluationInterval: config.metrics.intervalMs });
    const n = new NodeServices(config, queue, alerts);
    n.#closers.push(() => alerts.close());
    return n;
  }

  /** Alerts now firing. */
  firing(): Alert[] {
    return this.alerts.alerts().filter((a) => a.state === 'firing');
  }

  /** Stops the monitor and the alert engine. */
  async close(): Promise<void> {
    for (const c of this.#closers.splice(0)) await Promise.resolve().then(c).catch(() => {});
  }
}

import { join } from 'node:path';
import type { JsonValue, TaskContext, TaskExecutor, TaskRecord, TaskResult, TaskTrigger } from '../task/index.js';
import { type ContainerRunResult, type DockerRunContext, type RunningContainer, runContainer } from './container.js';
import { type ComposeRunResult, runCompose } from './compose.js';
import type { ArchiveInfo } from './artifacts.js';
import type { DockerEngine } from './engine.js';
import { DockerCleanupError } from './errors.js';
import type { LogChunk } from './logs.js';
import { InMemoryPortLeases, type PortLeaseBook } from './ports.js';
import { reapLeftovers } from './reaper.js';
import { type ComposeTaskConfig, ComposeTaskSpecSchema, type ContainerTaskConfig, ContainerTaskSpecSchema } from './spec.js';

/** Options of {@link createDockerExecutors}. */
export interface DockerExecutorOptions {
  /** The connected engine. */
  engine: DockerEngine;
  /** Port leases shared by every task of these executors (default: one in-memory book). */
  portLeases?: PortLeaseBook;
}

/**
 * Layout inside the queue's per-task workspace: `work/` is what the container sees (mounted
 * at `workspaceMount`, outputs under `work/out`), `docker-logs/` holds per-source log files
 * the container cannot touch, `outputs.zip` the archive. The queue's own `stdout.log`,
 * `stderr.log` and `output.log` sit beside them, fed through `ctx.log`.
 */
export function dockerTaskLayout(workspace: string): Pick<DockerRunContext, 'workspaceDir' | 'logsDir' | 'archivePath'> {
  return { workspaceDir: join(workspace, 'work'), logsDir: join(workspace, 'docker-logs'), archivePath: join(workspace, 'outputs.zip') };
}

/** Splits chunks per source into lines and prefixes them (`web | ...`) for the combined task log. */
function linePrefixer(emit: (stream: 'stdout' | 'stderr', text: string) => void): { push(c: LogChunk): void; flush(): void } {
  const partial = new Map<string, string>();
  return {
    push(c) {
      const key = `${c.source}\0${c.stream}`;
      const text = (partial.get(key) ?? '') + c.data.toString('utf8');
      const cut = text.lastIndexOf('\n');
      if (cut < 0) {
        partial.set(key, text);
        return;
      }
      partial.set(key, text.slice(cut + 1));
      emit(c.stream, text.slice(0, cut + 1).replace(/^(?=.)/gm, `${c.source} | `));
    },
    flush() {
      for (const [key, text] of partial) {
        if (!text) continue;
        const [source, stream] = key.split('\0') as [string, 'stdout' | 'stderr'];
        emit(stream, `${source} | ${text}\n`);
      }
      partial.clear();
    },
  };
}

function runContext(ctx: TaskContext<unknown>, leases: PortLeaseBook, live: Map<string, RunningContainer[]>): DockerRunContext {
  const id = ctx.task.id;
  return {
    onStarted: (info) => live.set(id, [...(live.get(id) ?? []), info]),
    onStopped: (containerId) => {
      const left = (live.get(id) ?? []).filter((c) => c.containerId !== containerId);
      if (left.length) live.set(id, left);
      else live.delete(id);
    },
    taskId: id,
    ...dockerTaskLayout(ctx.workspace),
    signal: ctx.signal,
    portLeases: leases,
    defaultStopGraceMs: ctx.killAfterMs,
  };
}

/** The archive as recorded on the task: what was skipped is capped (a task can leave millions of links). */
function archiveResult(a: ArchiveInfo): Record<string, JsonValue> {
  return { path: a.path, files: a.files, bytes: a.bytes, zipBytes: a.zipBytes, skipped: a.skipped.slice(0, 100), skippedCount: a.skipped.length };
}

function containerResult(r: ContainerRunResult): TaskResult {
  const result: Record<string, JsonValue> = {
    containerId: r.containerId,
    oomKilled: r.oomKilled,
    logsDir: r.logs.dir,
    stdoutLog: r.logs.stdout,
    stderrLog: r.logs.stderr,
    ports: r.ports.map((p) => ({ container: p.container, host: p.host, protocol: p.protocol, ...(p.requested ? { requested: p.requested } : {}) })),
    durationMs: r.durationMs,
  };
  if (r.cgroupId !== undefined) result.cgroupId = r.cgroupId.toString();
  if (r.archive) result.archive = archiveResult(r.archive);
  if (r.builtImage) result.builtImage = r.builtImage;
  const out: TaskResult = { exitCode: r.exitCode, result, artifacts: r.archive ? [r.archive.path] : [] };
  if (r.archiveError) out.error = r.archiveError.message;
  if (r.oomKilled && r.exitCode !== 0) out.error = `container was OOM-killed (exit ${r.exitCode})`;
  return out;
}

/**
 * The spec's own `timeoutMs` stops the work inside the executor, where the queue cannot tell
 * it from a failure; say so in the error instead of reporting a bare exit 137.
 */
function specTimeout<R extends { outcome: string }>(r: R, ctx: TaskContext<unknown>, out: TaskResult, ms: number | undefined): TaskResult {
  if (r.outcome === 'timed_out' && !ctx.signal.aborted) {
    out.error = `timed out after ${ms} ms (spec.timeoutMs; submit with timeoutMs for a timed_out state)`;
  }
  return out;
}

function composeResult(r: ComposeRunResult): TaskResult {
  const result: Record<string, JsonValue> = {
    project: r.project,
    logsDir: r.logsDir,
    services: r.services.map((s) => ({
      service: s.service,
      containerId: s.containerId,
      exitCode: s.exitCode,
      stdoutLog: s.logs.stdout,
      stderrLog: s.logs.stderr,
      ...(s.cgroupId !== undefined ? { cgroupId: s.cgroupId.toString() } : {}),
    })),
    durationMs: r.durationMs,
  };
  if (r.archive) result.archive = archiveResult(r.archive);
  if (r.downError) result.downError = r.downError.slice(-2000);
  const out: TaskResult = { exitCode: r.exitCode, result, artifacts: r.archive ? [r.archive.path] : [] };
  if (r.archiveError) out.error = r.archiveError.message;
  return out;
}

/** A `smoothtask/metrics` filter selecting a task's containers. */
export interface TaskMetricsFilter {
  /** cgroup v2 ids of the task's running containers. */
  cgroupIds: bigint[];
}

/** CPU, memory and I/O of a running task, summed over its containers. */
export interface TaskUsage {
  /** CPU time, ns. */
  cpuNs: number;
  /** Memory charged, bytes (containers whose memory is not visible count 0). */
  memoryBytes: number;
  /** Bytes read from block devices. */
  ioReadBytes: number;
  /** Bytes written to block devices. */
  ioWriteBytes: number;
  /** Containers measured. */
  containers: number;
}

/** The `container` and `compose` executors for `TaskQueue.registerExecutor`. */
export interface DockerExecutors {
  /**
   * The containers of a task that run right now (one for a container task, one per started
   * service for compose), with id, pid and cgroup id. Empty when the task is not running.
   */
  running(taskId: string): readonly RunningContainer[];
  /**
   * A filter for `smoothtask/metrics` readers (`FilterSchema.cgroupIds`) that selects the
   * task's containers, or `undefined` when none runs.
   */
  metricsFilter(taskId: string): TaskMetricsFilter | undefined;
  /** CPU, memory and I/O of a running task from its containers' cgroup files, or `undefined`. */
  usage(taskId: string): TaskUsage | undefined;
  /** Executor of container tasks (spec: {@link ContainerTaskSpecSchema}). */
  container: TaskExecutor<ContainerTaskConfig>;
  /** Executor of compose tasks (spec: {@link ComposeTaskSpecSchema}). */
  compose: TaskExecutor<ComposeTaskConfig>;
  /** The port lease book both executors share. */
  portLeases: PortLeaseBook;
}

/**
 * Creates the `container` and `compose` executors on the task core's executor seam.
 *
 * - `run(ctx)` streams output through `ctx.log` (compose lines prefixed `service | `), records
 *   `containerId`/`cgroupId`/`pid`/`ports` with `ctx.setInfo` as soon as the container runs,
 *   stops the work on `ctx.signal` (SIGTERM, then SIGKILL after `ctx.killAfterMs`) and settles
 *   only when the container or project is gone. The queue then records `timed_out` or
 *   `cancelled`; a non-zero exit becomes `failed` with the exit code.
 * - The outputs ZIP is the task's artifact; the result holds log paths and per-service details.
 * - `cleanup(task)` removes anything still labeled with the task id AND the engine's owner
 *   (idempotent); another owner's resources with the same task id are never touched.
 *
 * @example
 * ```ts
 * const engine = await connectDocker({ ownerId: await persistentOwnerId(storeDir) });
 * await reapLeftovers(engine);            // what a crashed earlier run of this owner left
 * const queue = new TaskQueue({ concurrency: 4 });
 * registerDockerExecutors(queue, { engine });
 * const h = queue.submit({ kind: 'container', spec: { image: 'busybox', command: ['true'] }, timeoutMs: 10_000 });
 * ```
 */
export function createDockerExecutors(options: DockerExecutorOptions): DockerExecutors {
  const { engine } = options;
  const leases = options.portLeases ?? new InMemoryPortLeases();
  const live = new Map<string, RunningContainer[]>();
  const cleanup = async (task: Readonly<TaskRecord>): Promise<void> => {
    const r = await reapLeftovers(engine, { scope: 'all', taskIds: [task.id], images: true });
    if (r.errors.length) throw new DockerCleanupError(task.id, r.errors);
  };
  return {
    portLeases: leases,
    running: (taskId) => live.get(taskId) ?? [],
    metricsFilter(taskId) {
      const ids = (live.get(taskId) ?? []).map((c) => c.cgroupId).filter((x): x is bigint => x !== undefined);
      return ids.length ? { cgroupIds: ids } : undefined;
    },
    usage(taskId) {
      const cs = live.get(taskId);
      if (!cs?.length) return undefined;
      const u: TaskUsage = { cpuNs: 0, memoryBytes: 0, ioReadBytes: 0, ioWriteBytes: 0, containers: 0 };
      for (const c of cs) {
        try {
          const x = c.usage();
          u.cpuNs += x.cpuNs;
          u.memoryBytes += x.memoryBytes ?? 0;
          u.ioReadBytes += x.ioReadBytes;
          u.ioWriteBytes += x.ioWriteBytes;
          u.containers++;
        } catch {
          // That container just exited.
        }
      }
      return u.containers ? u : undefined;
    },
    container: {
      specSchema: ContainerTaskSpecSchema as unknown as TaskExecutor<ContainerTaskConfig>['specSchema'],
      async run(ctx) {
        const rc = runContext(ctx, leases, live);
        rc.onLog = (c) => ctx.log(c.source === 'build' ? 'system' : c.stream, c.data);
        const track = rc.onStarted!;
        rc.onStarted = (info) => {
          track(info);
          ctx.setInfo({
            containerId: info.containerId,
            pid: info.pid,
            ...(info.cgroupId !== undefined ? { cgroupId: info.cgroupId.toString() } : {}),
            ports: info.ports.map((p) => ({ container: p.container, host: p.host })),
          });
        };
        const r = await runContainer(engine, ctx.spec, rc);
        return specTimeout(r, ctx, containerResult(r), ctx.spec.timeoutMs);
      },
      cleanup,
    },
    compose: {
      specSchema: ComposeTaskSpecSchema as unknown as TaskExecutor<ComposeTaskConfig>['specSchema'],
      async run(ctx) {
        const rc = runContext(ctx, leases, live);
        const lines = linePrefixer((stream, text) => ctx.log(stream, text));
        rc.onLog = (c) => (c.source === 'compose' ? ctx.log('system', c.data) : lines.push(c));
        try {
          const r = await runCompose(engine, ctx.spec, rc);
          ctx.setInfo({ project: r.project });
          return specTimeout(r, ctx, composeResult(r), ctx.spec.timeoutMs);
        } finally {
          lines.flush();
        }
      },
      cleanup,
    },
  };
}

/** Minimal view of `TaskQueue` needed by {@link registerDockerExecutors}. */
export interface ExecutorRegistry {
  /** Registers an executor for a kind. */
  registerExecutor<Spec>(kind: string, executor: TaskExecutor<Spec>): unknown;
}

/** Registers the executors as kinds `container` and `compose` (or custom names). */
export function registerDockerExecutors(
  queue: ExecutorRegistry,
  options: DockerExecutorOptions & { kinds?: { container?: string; compose?: string } },
): DockerExecutors {
  const ex = createDockerExecutors(options);
  queue.registerExecutor(options.kinds?.container ?? 'container', ex.container);
  queue.registerExecutor(options.kinds?.compose ?? 'compose', ex.compose);
  return ex;
}

/**
 * A trigger that removes whatever is still labeled with the task's id and the engine's owner
 * after every outcome (success, failure, timeout, cancel). Runs anyway; the executors already
 * clean up, so it normally finds nothing, and records a {@link DockerCleanupError} on the task
 * when something could not be removed. Resources of other owners (another queue running a task
 * with the same id) are never touched: give each queue an engine with its own `ownerId`.
 */
export function dockerCleanupTrigger(engine: DockerEngine): TaskTrigger {
  return {
    name: 'docker-cleanup',
    on: ['success', 'failure', 'timeout', 'cancel'],
    async run(task) {
      const r = await reapLeftovers(engine, { scope: 'all', taskIds: [task.id], images: true });
      if (r.errors.length) throw new DockerCleanupError(task.id, r.errors);
      return r;
    },
  };
}

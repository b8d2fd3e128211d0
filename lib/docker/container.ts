import { channel } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { validate } from '../errors/validate.js';
import { type ArchiveInfo, prepareOutputsDir, zipDirectory } from './artifacts.js';
import { buildTaskImage, tagSafe } from './build.js';
import { cgroupIdOfPid, cgroupUsageOfPid, type CgroupUsage } from './cgroup.js';
import { DockerDemuxer } from './demux.js';
import { type DockerEngine, dockerode, toDockerError } from './engine.js';
import { OutputTooLargeError } from './errors.js';
import { taskLabels } from './labels.js';
import { type LogListener, TaskLogWriter } from './logs.js';
import { InMemoryPortLeases, type PortLeaseBook, type ResolvedPort, resolvePorts } from './ports.js';
import { type ContainerTaskConfig, type ContainerTaskSpec, ContainerTaskSpecSchema } from './spec.js';
import { UnsafePathError } from '../workspace/index.js';
import { within } from '../util/within.js';

/** diagnostics_channel on which container lifecycle events are published. */
export const containerChannel = channel('smoothtask:docker:container');

/** Where a task's files live on the host. */
export interface TaskPaths {
  /** Workspace directory, mounted into the container. Outputs go to `<workspace>/<outputs.dir>`. */
  workspaceDir: string;
  /** Directory of the persisted logs (outside the workspace, so the task cannot tamper with them). */
  logsDir: string;
  /** Where the outputs ZIP is written. */
  archivePath: string;
}

/** Default layout under a root directory: `<root>/<task>/{workspace,logs,outputs.zip}`. */
export function taskPaths(root: string, taskId: string): TaskPaths {
  const base = join(root, tagSafe(taskId));
  return { workspaceDir: join(base, 'workspace'), logsDir: join(base, 'logs'), archivePath: join(base, 'outputs.zip') };
}

/** What a run needs besides the spec. */
export interface DockerRunContext extends TaskPaths {
  /** Task id (labels, names). */
  taskId: string;
  /**
   * Aborting stops the container (SIGTERM, then SIGKILL after `stopGraceMs`). An abort reason
   * whose `name` is `TimeoutError` counts as a timeout, anything else as a cancel.
   */
  signal?: AbortSignal;
  /** Live output listener. */
  onLog?: LogListener;
  /** Called once the container runs (for compose: once per service container), with its id, init pid and cgroup id. */
  onStarted?: (info: RunningContainer) => void;
  /** Called when a container reported by `onStarted` is gone (exited and removed, or the task ended). */
  onStopped?: (containerId: string) => void;
  /** Port leases shared with other tasks (default: a private book, i.e. only host sockets are checked). */
  portLeases?: PortLeaseBook;
  /** Grace between SIGTERM and SIGKILL when the spec sets no `stopGraceMs` (default 2000). */
  defaultStopGraceMs?: number;
  /**
   * How long an engine call before the start (create, attach, start) may go on answering after
   * the task was stopped (timeout or cancel), default 10000 ms. One that answers in time goes on
   * as usual (a started container is stopped gracefully); one still silent then is given up and
   * the run ends with the stop's reason.
   */
  engineAnswerGraceMs?: number;
}

/** A running task container. */
export interface RunningContainer {
  /** Container id. */
  containerId: string;
  /** Host pid of the container's init process. */
  pid: number;
  /** cgroup v2 id (inode of its cgroup directory); what BPF's `bpf_get_current_cgroup_id` sees. */
  cgroupId: bigint | undefined;
  /** Host ports in use. */
  ports: ResolvedPort[];
  /** The compose service, for containers of compose tasks. */
  service?: string;
  /** CPU, memory and I/O of the container right now, from cgroup files. */
  usage(): CgroupUsage;
  /**
   * What `JSON.stringify` writes: the fields, with `cgroupId` as a decimal string (or null),
   * since JSON has no BigInt.
   */
  toJSON(): { containerId: string; pid: number; cgroupId: string | null; ports: ResolvedPort[]; service?: string };
}

/** A {@link RunningContainer} with its JSON form. @internal */
export function runningContainer(f: Omit<RunningContainer, 'usage' | 'toJSON'>): RunningContainer {
  return {
    ...f,
    usage: () => cgroupUsageOfPid(f.pid),
    toJSON() {
      return {
        containerId: f.containerId,
        pid: f.pid,
        cgroupId: f.cgroupId === undefined ? null : f.cgroupId.toString(),
        ports: f.ports,
        ...(f.service !== undefined ? { service: f.service } : {}),
      };
    },
  };
}

/** How a container or compose run ended. */
export type RunOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

/** The result of {@link runContainer}. */
export interface ContainerRunResult {
  /** Outcome. */
  outcome: RunOutcome;
  /** Exit code of the container's main process (137 after a kill). */
  exitCode: number | null;
  /** Whether the kernel OOM-killed a process of the container (the main one, or another when the exit code is 0). */
  oomKilled: boolean;
  /** Container id (the container itself is removed). */
  containerId: string;
  /** cgroup id it ran in. */
  cgroupId: bigint | undefined;
  /** Log files of the container's output. */
  logs: {
    /** stdout log file. */
    stdout: string;
    /** stderr log file. */
    stderr: string;
    /** Directory of all this task's log files (build output included). */
    dir: string;
  };
  /** Outputs archive, when the task wrote outputs. */
  archive?: ArchiveInfo;
  /** Set when the outputs exceeded the cap, or the outputs folder was replaced by a link or a non-directory (no archive then). */
  archiveError?: OutputTooLargeError | UnsafePathError;
  /** Host ports used. */
  ports: ResolvedPort[];
  /** Image built for the task, when the spec had `build`. */
  builtImage?: string;
  /** Wall time of the whole run (build, start, wait, remove), ms. */
  durationMs: number;
}

/** Whether an abort reason means "timed out". @internal */
export function isTimeoutReason(reason: unknown): boolean {
  const r = reason as { name?: string; code?: string } | undefined;
  return r?.name === 'TimeoutError' || r?.name === 'TaskTimeoutError' || r?.code === 'ERR_TASK_TIMEOUT';
}

function abortOutcome(signal: AbortSignal | undefined, internal: AbortSignal | undefined): RunOutcome | undefined {
  if (internal?.aborted) return 'timed_out';
  if (signal?.aborted) return isTimeoutReason(signal.reason) ? 'timed_out' : 'cancelled';
  return undefined;
}

/** How long to wait for a stopped container's output streams to end before cutting them. @internal */
export const LOG_DRAIN_MS = 30_000;

/** How long a SIGKILLed container's OOM flag may take to appear after the exit (see {@link settledOomKilled}). @internal */
export const OOM_SETTLE_MS = 15_000;

/**
 * Whether the kernel log holds an OOM kill inside the container's memory cgroup: the
 * `oom-kill:` record (or, on older kernels, `Task in … killed as a result of limit of …`)
 * naming the container id. The kernel writes it before the victim dies, so it is there when
 * `wait` returns, whatever the engine is doing. `undefined` when `/dev/kmsg` cannot be read
 * (not root, `dmesg_restrict`, another namespace). Reads the whole ring buffer; call only
 * when a kill is plausible. @internal
 */
export function kernelLoggedOomKill(containerId: string): boolean | undefined {
  let fd: number;
  try {
    fd = openSync('/dev/kmsg', fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const buf = Buffer.alloc(8192);
  try {
    for (let records = 0; records < 1_000_000; records++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records overwritten while reading: go on with the next one
        if (code === 'EAGAIN') return false; // end of the buffer
        return undefined;
      }
      if (n <= 0) return false;
      const rec = buf.toString('latin1', 0, n);
      if (!rec.includes(containerId)) continue;
      if (rec.includes('oom-kill:') || rec.includes('killed as a result of limit of')) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the kernel OOM-killed a process of a container that has exited. The engine's
 * `State.OOMKilled` is not enough on its own: it learns of the OOM kill and of the exit
 * through two events that arrive in either order (under load `wait` returns before the flag
 * is set, and it was seen never to be set at all). The rule, independent of timing and of
 * what else the engine does:
 * - exit 0 without a memory limit: no OOM kill;
 * - otherwise the kernel log decides when it can be read ({@link kernelLoggedOomKill}): an OOM
 *   kill in the container's memory cgroup is recorded before the victim dies;
 * - the engine's flag counts too (a kernel log that wrapped); without a readable kernel log, a
 *   main process killed by SIGKILL (exit 137) that we did not send under a memory limit re-reads
 *   the flag until it is set or {@link OOM_SETTLE_MS} passed.
 * @internal
 */
export async function settledOomKilled(
  c: Docker.Container,
  exitCode: number,
  how: { memoryLimited: boolean; stoppedByUs: boolean; settleMs?: number },
): Promise<boolean> {
  if (exitCode === 0 && !how.memoryLimited) return false;
  const kernel = kernelLoggedOomKill(c.id);
  if (kernel === true) return true;
  const settle = kernel === undefined && exitCode === 137 && how.memoryLimited && !how.stoppedByUs;
  const deadline = Date.now() + (settle ? (how.settleMs ?? OOM_SETTLE_MS) : 5_000);
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    let flag: boolean | undefined;
    try {
      flag = (await c.inspect()).State.OOMKilled;
    } catch (e) {
      // Gone (removed by someone else): nothing more to learn.
      if ((e as { statusCode?: number }).statusCode === 404) return false;
    }
    if (flag === true) return true;
    if (flag === false && !settle) return false;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Stops a container: SIGTERM, then SIGKILL after `graceMs` if it is still running. @internal */
export async function stopContainer(c: Docker.Container, graceMs: number, exited: Promise<unknown>): Promise<void> {
  try {
    await c.kill({ signal: 'SIGTERM' });
  } catch {
    // Already exited.
  }
  let t: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace'>((r) => {
    t = setTimeout(() => r('grace'), graceMs);
    t.unref();
  });
  const first = await Promise.race([exited.then(() => 'exited' as const, () => 'exited' as const), graceOver]);
  clearTimeout(t);
  if (first === 'grace') {
    try {
      await c.kill({ signal: 'SIGKILL' });
    } catch {
      // Exited in between.
    }
  }
}

/**
 * Runs a container task to its end: (build), port checks, create with labels, attach logs,
 * start, wait, stop on abort/timeout, remove the container, zip the outputs, release ports,
 * remove the built image (by policy). Every resource it creates is removed before it returns,
 * whatever the ending.
 *
 * A non-zero exit is not an exception: it resolves with `outcome: 'failed'`. Setup problems
 * (bad spec, port collision, broken Dockerfile, engine down) reject with typed errors.
 */
export async function runContainer(engine: DockerEngine, spec: ContainerTaskSpec, ctx: DockerRunContext): Promise<ContainerRunResult> {
  const cfg: ContainerTaskConfig = validate(ContainerTaskSpecSchema, spec, 'container task spec');
  const t0 = performance.now();
  const leases = ctx.portLeases ?? new InMemoryPortLeases();
  const timeout = cfg.timeoutMs !== undefined ? AbortSignal.timeout(cfg.timeoutMs) : undefined;
  const signals = [ctx.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
  const stopSignal = signals.length ? AbortSignal.any(signals) : undefined;
  const logs = await new TaskLogWriter(ctx.logsDir).init();
  const unsub = ctx.onLog ? logs.subscribe(ctx.onLog) : undefined;
  const outputsDir = join(ctx.workspaceDir, cfg.outputs.dir);
  const answerGraceMs = ctx.engineAnswerGraceMs ?? 10_000;
  let container: Docker.Container | undefined;
  let builtImage: string | undefined;
  let ports: ResolvedPort[] = [];
  let startedId: string | undefined;
  try {
    // The container may run as another uid; the workspace is the task's to write. Nothing is
    // created or chmodded through a link a previous attempt left there.
    await prepareOutputsDir(ctx.workspaceDir, cfg.outputs.dir);
    stopSignal?.throwIfAborted();

    let image = cfg.image;
    if (cfg.build) {
      const b = await buildTaskImage(engine, {
        context: cfg.build.context,
        dockerfile: cfg.build.dockerfile,
        args: cfg.build.args,
        taskId: ctx.taskId,
        onOutput: (line) => void logs.write('build', 'stdout', Buffer.from(line)),
        ...(stopSignal ? { signal: stopSignal } : {}),
      });
      builtImage = b.tag;
      image = b.tag;
    }
    ports = await resolvePorts(cfg.ports, cfg.onPortConflict, ctx.taskId, leases);

    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of ports) {
      const k = `${p.container}/${p.protocol}`;
      exposed[k] = {};
      (bindings[k] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.host) });
    }
    const labels = { ...cfg.labels, ...taskLabels(ctx.taskId, engine.ownerId, 'container') };
    const create: Docker.ContainerCreateOptions = {
      name: `smoothtask-${tagSafe(ctx.taskId)}-${Math.random().toString(36).slice(2, 8)}`,
      Image: image,
      Labels: labels,
      Env: Object.entries(cfg.env).map(([k, v]) => `${k}=${v}`),
      WorkingDir: cfg.workdir ?? cfg.workspaceMount,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      ExposedPorts: exposed,
      HostConfig: {
        Binds: [`${ctx.workspaceDir}:${cfg.workspaceMount}`, ...cfg.mounts.map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`)],
        PortBindings: bindings,
        NetworkMode: cfg.network,
        ...(cfg.limits.memoryBytes !== undefined ? { Memory: cfg.limits.memoryBytes, MemorySwap: cfg.limits.memoryBytes } : {}),
        ...(cfg.limits.cpus !== undefined ? { NanoCpus: Math.round(cfg.limits.cpus * 1e9) } : {}),
        ...(cfg.limits.pids !== undefined ? { PidsLimit: cfg.limits.pids } : {}),
      },
    };
    if (cfg.command) create.Cmd = cfg.command;
    if (cfg.entrypoint) create.Entrypoint = cfg.entrypoint;
    if (cfg.user) create.User = cfg.user;
    try {
      // Each engine call before the start ends with the task's stop signal (after a grace for
      // an engine that is only slow): one that never answers must not hold the task for good.
      container = await orAbort(dockerode(engine).createContainer(create), stopSignal, (late) => void removeQuietly(late), answerGraceMs);
    } catch (e) {
      if (stopSignal?.aborted) throw stopSignal.reason;
      throw toDockerError(e, engine.socketPath, `create container for task ${ctx.taskId}`);
    }
    containerChannel.publish({ phase: 'created', taskId: ctx.taskId, containerId: container.id });

    // Attach before start so no early output is lost (what `docker run` does).
    const attached = (await orAbort(
      container.attach({ stream: true, stdout: true, stderr: true }) as Promise<unknown>,
      stopSignal,
      (late) => (late as Readable).destroy(),
      answerGraceMs,
    )) as Readable;
    const demux = new DockerDemuxer((stream, chunk) => logs.write('main', stream, chunk));
    attached.pipe(demux);
    const logsDone = once(demux, 'finish').catch(() => undefined);

    stopSignal?.throwIfAborted();
    try {
      // A start that answers after the abort goes on to the graceful stop below (its output
      // may already be flowing); only one that stays silent for the grace is given up.
      await orAbort(container.start(), stopSignal, undefined, answerGraceMs);
    } catch (e) {
      if (stopSignal?.aborted) throw stopSignal.reason;
      throw toDockerError(e, engine.socketPath, `start container for task ${ctx.taskId}`);
    }
    // Wait for "not running", asked once started: it answers at once for a container that has
    // already exited. A `next-exit` wait sent before the start is its own request on its own
    // socket, and when the engine sees it only after a quick container's exit (under load it
    // does) it waits for an exit that never comes.
    const waited = container.wait({ condition: 'not-running' }) as Promise<{ StatusCode: number }>;
    waited.catch(() => undefined);

    let stopping: Promise<void> | undefined;
    const onAbort = (): void => {
      stopping ??= stopContainer(container!, cfg.stopGraceMs ?? ctx.defaultStopGraceMs ?? 2_000, waited);
    };
    stopSignal?.addEventListener('abort', onAbort, { once: true });
    if (stopSignal?.aborted) onAbort();

    let cgroupId: bigint | undefined;
    {
      try {
        const info = await container.inspect();
        const pid = info.State.Pid;
        if (pid > 0) {
          try {
            cgroupId = cgroupIdOfPid(pid);
          } catch {
            // Exited already: no cgroup to name.
          }
          const running = runningContainer({ containerId: container.id, pid, cgroupId, ports });
          containerChannel.publish({ phase: 'started', taskId: ctx.taskId, containerId: container.id, pid, cgroupId });
          startedId = container.id;
          ctx.onStarted?.(running);
        }
      } catch {
        // A container that exits at once has no pid to report; the run goes on.
      }
    }

    let status: { StatusCode: number };
    try {
      status = await waited;
    } catch (e) {
      throw toDockerError(e, engine.socketPath, `wait for container of task ${ctx.taskId}`);
    } finally {
      stopSignal?.removeEventListener('abort', onAbort);
    }
    if (stopping) await stopping;
    // The attach stream ends once the engine has sent all output; bound the wait (generously:
    // a busy engine flushes late) only in case it never closes it.
    await within(logsDone, LOG_DRAIN_MS);
    attached.unpipe(demux);
    attached.destroy();

    const oomKilled = await settledOomKilled(container, status.StatusCode, {
      memoryLimited: cfg.limits.memoryBytes !== undefined,
      stoppedByUs: stopping !== undefined,
    });
    const outcome = abortOutcome(ctx.signal, timeout) ?? (status.StatusCode === 0 ? 'succeeded' : 'failed');
    const result: ContainerRunResult = {
      outcome,
      exitCode: status.StatusCode,
      oomKilled,
      containerId: container.id,
      cgroupId,
      logs: { stdout: logs.path('main', 'stdout'), stderr: logs.path('main', 'stderr'), dir: ctx.logsDir },
      ports,
      durationMs: performance.now() - t0,
    };
    if (builtImage) result.builtImage = builtImage;
    await removeQuietly(container);
    container = undefined;
    try {
      const a = await zipDirectory(outputsDir, ctx.archivePath, { maxBytes: cfg.outputs.maxBytes, root: ctx.workspaceDir });
      if (a) result.archive = a;
    } catch (e) {
      if (e instanceof OutputTooLargeError || e instanceof UnsafePathError) result.archiveError = e;
      else throw e;
    }
    containerChannel.publish({ phase: 'ended', taskId: ctx.taskId, containerId: result.containerId, outcome, exitCode: status.StatusCode });
    return result;
  } finally {
    if (container) await removeQuietly(container);
    if (startedId) ctx.onStopped?.(startedId);
    leases.release(ctx.taskId);
    if (builtImage && cfg.build?.removeImage) {
      try {
        await dockerode(engine).getImage(builtImage).remove({ force: true });
      } catch {
        // The reaper catches what is left.
      }
    }
    unsub?.();
    await logs.close();
  }
}

/**
 * `p`, or a rejection with `signal`'s reason once it aborts (after `graceMs` more, when given,
 * during which `p` may still settle as usual). The request itself cannot be taken back: a value
 * that arrives after the rejection is handed to `late` (to remove a container created too late,
 * or close a stream).
 */
function orAbort<T>(p: Promise<T>, signal: AbortSignal | undefined, late?: (value: T) => void, graceMs?: number): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    let given = false;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = () => {
      given = true;
      reject(signal.reason);
    };
    const onAbort = () => {
      if (graceMs === undefined) giveUp();
      else timer = setTimeout(giveUp, graceMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        if (given) late?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        if (!given) reject(e);
      },
    );
  });
}

async function removeQuietly(c: Docker.Container): Promise<void> {
  try {
    await c.remove({ force: true, v: true });
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return;
    // 409 "removal already in progress" is fine too; anything else is left for the reaper.
  }
}

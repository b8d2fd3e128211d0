/**
 * The `process` task executor: runs a command as a child process in its own cgroup (or, where
 * no cgroup is writable, its own process group).
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { LimitsSchema } from '../docker/spec.js';
import type { CgroupUsage } from '../docker/cgroup.js';
import { validate } from '../errors/validate.js';
import type { TaskContext, TaskExecutor, TaskResult } from '../task/types.js';
import type { JsonValue } from '../util/json.js';
import { cgroupSupport, createTaskCgroup, reapStaleCgroups, type ContainmentMode, type TaskCgroup } from './cgroup.js';
import { CgroupError, ProcessSpawnError } from './errors.js';
import { childClosed, killGroup, spawnError, stopGroup, type ChildEnd } from './group.js';
import { within } from '../util/within.js';

/** Spec of a `process` task. */
export const ProcessSpecSchema = z.strictObject({
  /** Executable (looked up in PATH), or a shell command line with `shell: true`. */
  command: z.string().min(1),
  /** Arguments. */
  args: z.array(z.string()).default([]),
  /** Run `command` through `/bin/sh -c`. */
  shell: z.boolean().default(false),
  /** Extra environment variables. */
  env: z.record(z.string(), z.string()).default({}),
  /** Start from this process's environment (default true). */
  inheritEnv: z.boolean().default(true),
  /** Working directory; default the task workspace; relative paths are relative to it. */
  cwd: z.string().optional(),
  /** Text written to stdin (then closed); default: stdin is /dev/null. */
  stdin: z.string().optional(),
  /** Files (relative to the workspace, or absolute) reported as outputs when they exist at the end. */
  outputs: z.array(z.string()).default([]),
  /** Signal for the polite stop (default SIGTERM). */
  stopSignal: z.literal(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']).default('SIGTERM'),
  /**
   * Limits enforced by the task's cgroup, with the container spec's names: `memoryBytes` (OOM
   * kill above it), `cpus` (CPU quota in cores), `pids` (max processes/threads). A task with a
   * limit fails to start where the controller is not available.
   */
  limits: LimitsSchema.default({}),
});
/** Spec of a `process` task (input form). */
export type ProcessSpec = z.input<typeof ProcessSpecSchema>;

/** Options of {@link ProcessExecutor}. */
export const ProcessExecutorOptionsSchema = z.strictObject({
  /**
   * `auto` (default): a cgroup per task where one is writable, else process groups (reported in
   * `task.info.containment` and the system log); `require`: fail tasks where no cgroup is
   * writable; `off`: process groups only.
   */
  cgroups: z.enum(['auto', 'require', 'off']).default('auto'),
});
/** Options of {@link ProcessExecutor} (input form). */
export type ProcessExecutorOptions = z.input<typeof ProcessExecutorOptionsSchema>;

/**
 * The wrapper that puts the child into its cgroup before the task's command runs: Node cannot
 * spawn straight into a cgroup, so `/bin/sh` writes its own pid (`$$`, kept by `exec`) into
 * the `cgroup.procs` file of each hierarchy, reports `ok` on fd 3, closes fd 3 and `exec`s the
 * command. Until then only this script runs; if a write fails it exits 125 without running it.
 */
const JOIN_SCRIPT = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; echo ok >&3; exec 3>&-; exec "$@"';

/** CPU, memory and I/O of a running process task, read from its cgroup. */
export interface ProcessTaskUsage extends CgroupUsage {
  /** Processes in the task's cgroup now. */
  processes: number;
}

/**
 * Runs `spec.command` in a cgroup of its own, with stdout/stderr streamed to the task's log
 * files and listeners (reading pauses while the log sink is behind, so a child that writes
 * faster than the disk is slowed down instead of filling the memory).
 *
 * Containment (see docs/process.md): the child joins a fresh cgroup before the command runs
 * (a `/bin/sh` wrapper, {@link ProcessExecutorOptions}), so every process it starts, including
 * `setsid` escapees and double-forked daemons, is in it. On abort (cancel or timeout) every
 * process of the cgroup gets the stop signal, then the cgroup is killed after
 * `ctx.killAfterMs` (`cgroup.kill`, or the v1 freezer). When the leader exits on its own, the
 * rest of the cgroup is killed. `run()` settles once the cgroup is empty, not when the pipes
 * close; the cgroup is then removed. Limits (`spec.limits`) are the cgroup's; a task the kernel
 * OOM-killed fails with an error that says OOM; CPU/memory usage is read from the cgroup
 * ({@link ProcessExecutor.usage}, and `task.info.usage` at the end).
 *
 * Where no cgroup is writable (not root) the fallback is the child's process group
 * (`detached`, `kill(-pgid)`), which a `setsid` escapee leaves; `task.info.containment` says
 * which was used.
 *
 * Environment added: `SMOOTHTASK_TASK_ID`, `SMOOTHTASK_WORKSPACE`, `SMOOTHTASK_ATTEMPT`, one
 * `SMOOTHTASK_LEASE_<RESOURCE>` per lease (ids comma-separated, or the amount), and
 * `CUDA_VISIBLE_DEVICES` for a `gpu` lease.
 */
export class ProcessExecutor implements TaskExecutor<z.output<typeof ProcessSpecSchema>> {
  /** Validates specs at submit. */
  readonly specSchema = ProcessSpecSchema;
  readonly #opts: z.output<typeof ProcessExecutorOptionsSchema>;
  readonly #live = new Map<string, TaskCgroup>();
  #reaped: Promise<unknown> | undefined;

  /** Creates the executor; leftovers of crashed owners are reaped before its first task. */
  constructor(options: ProcessExecutorOptions = {}) {
    this.#opts = validate(ProcessExecutorOptionsSchema, options, 'process executor options');
  }

  /** How tasks are contained on this host (`process-group` where no cgroup is writable, with the reason). */
  get containment(): { mode: ContainmentMode; reason?: string } {
    if (this.#opts.cgroups === 'off') return { mode: 'process-group', reason: 'cgroups: off' };
    const s = cgroupSupport();
    return s.reason ? { mode: s.mode, reason: s.reason } : { mode: s.mode };
  }

  /** CPU, memory and I/O of a running task from its cgroup, or `undefined` when it runs no cgroup. */
  usage(taskId: string): ProcessTaskUsage | undefined {
    const cg = this.#live.get(taskId);
    if (!cg) return undefined;
    try {
      return { ...cg.usage(), processes: cg.pids().length };
    } catch {
      return undefined;
    }
  }

  /** Runs one attempt. */
  async run(ctx: TaskContext<z.output<typeof ProcessSpecSchema>>): Promise<TaskResult> {
    const s = ctx.spec;
    const env: Record<string, string> = s.inheritEnv ? { ...(process.env as Record<string, string>) } : {};
    env.SMOOTHTASK_TASK_ID = ctx.task.id;
    env.SMOOTHTASK_WORKSPACE = ctx.workspace;
    env.SMOOTHTASK_ATTEMPT = String(ctx.attempt);
    for (const l of ctx.leases.held) {
      const v = l.ids.length ? l.ids.join(',') : String(l.amount);
      env[`SMOOTHTASK_LEASE_${l.resource.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = v;
      if (l.resource === 'gpu') env.CUDA_VISIBLE_DEVICES = l.ids.join(',');
    }
    Object.assign(env, s.env);
    const cwd = s.cwd === undefined ? ctx.workspace : isAbsolute(s.cwd) ? s.cwd : join(ctx.workspace, s.cwd);
    if (ctx.signal.aborted) throw ctx.signal.reason;

    const mode = this.containment;
    const wantsLimits = s.limits.memoryBytes !== undefined || s.limits.cpus !== undefined || s.limits.pids !== undefined;
    let cg: TaskCgroup | undefined;
    if (mode.mode !== 'process-group') {
      this.#reaped ??= reapStaleCgroups().catch(() => 0);
      await this.#reaped;
      cg = createTaskCgroup(ctx.task.id, s.limits);
    } else if (this.#opts.cgroups === 'require' || wantsLimits) {
      throw new CgroupError(`${wantsLimits ? 'limits need' : 'cgroups: require needs'} a writable cgroup: ${mode.reason ?? 'none'}`);
    }
    const argv = s.shell ? ['/bin/sh', '-c', s.command, ...s.args] : [s.command, ...s.args];
    try {
      ctx.setInfo({ containment: cg ? mode.mode : 'process-group', ...(cg ? { cgroups: [...cg.dirs] } : {}) });
      if (!cg) ctx.log('system', `no cgroup (${mode.reason ?? 'off'}): containing by process group; setsid escapees are not contained\n`);
      return await this.#run(ctx, argv, env, cwd, cg);
    } finally {
      if (cg) {
        this.#live.delete(ctx.task.id);
        if (!(await cg.remove())) ctx.log('system', `could not remove cgroup ${cg.dirs.join(', ')}\n`);
      }
    }
  }

  async #run(
    ctx: TaskContext<z.output<typeof ProcessSpecSchema>>,
    argv: string[],
    env: Record<string, string>,
    cwd: string,
    cg: TaskCgroup | undefined,
  ): Promise<TaskResult> {
    const s = ctx.spec;
    const stdinMode = s.stdin === undefined ? 'ignore' : 'pipe';
    let child: ChildProcess;
    if (cg) {
      // Resolve the executable here, so "not found" is an error of the task, not of the wrapper.
      const file = resolveExecutable(argv[0]!, env.PATH ?? process.env.PATH ?? '/usr/bin:/bin', cwd);
      const files = cg.procsFiles;
      child = spawn('/bin/sh', ['-c', JOIN_SCRIPT, 'smoothtask-join', String(files.length), ...files, file, ...argv.slice(1)], {
        cwd,
        env,
        detached: true,
        stdio: [stdinMode, 'pipe', 'pipe', 'pipe'],
      });
    } else {
      child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: [stdinMode, 'pipe', 'pipe'] });
    }
    const closed = childClosed(child);
    closed.catch(() => {});
    const exited = new Promise<ChildEnd>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(spawnError(child, e)));
    });
    const pid = child.pid!;
    // Output is read from the start (the wrapper's own complaints included), with backpressure.
    const pump = (from: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown }, stream: 'stdout' | 'stderr') =>
      from.on('data', (c: Buffer) => {
        const wait = ctx.log(stream, c);
        if (wait) {
          from.pause();
          void wait.then(() => from.resume());
        }
      });
    pump(child.stdout!, 'stdout');
    pump(child.stderr!, 'stderr');
    if (cg) {
      const joined = await new Promise<boolean>((resolve) => {
        let got = '';
        const fd3 = child.stdio[3] as NodeJS.ReadableStream;
        fd3.on('data', (d: Buffer) => (got += d.toString()));
        fd3.on('error', () => resolve(false));
        fd3.on('close', () => resolve(got.startsWith('ok')));
      });
      if (!joined) {
        await exited;
        await within(closed, 2000);
        throw new CgroupError(`process ${pid} could not join its cgroup (${cg.dirs.join(', ')}); the command did not run`);
      }
      this.#live.set(ctx.task.id, cg);
    }
    ctx.setInfo({ pid, pgid: pid });
    ctx.log('system', `spawned pid ${pid}${cg ? ' in its cgroup' : ''}: ${s.shell ? s.command : argv.join(' ')}\n`);
    if (s.stdin !== undefined) {
      child.stdin!.on('error', () => {});
      child.stdin!.end(s.stdin);
    }

    let stopping: Promise<'signal' | 'kill' | 'gone'> | undefined;
    const onAbort = () => {
      ctx.log('system', `stopping ${cg ? 'cgroup' : 'group'} of ${pid}: ${s.stopSignal}, SIGKILL after ${ctx.killAfterMs} ms\n`);
      stopping = cg ? stopCgroup(cg, pid, exited, ctx.killAfterMs, s.stopSignal) : stopGroup(child, closed, ctx.killAfterMs, s.stopSignal);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });

    let end: ChildEnd;
    if (cg) {
      end = await exited;
      // The leader is gone: whatever is left in its cgroup goes now (escapees, daemons).
      const left = cg.pids().length;
      if (left) {
        ctx.log('system', `leader exited; killing ${left} process(es) left in its cgroup\n`);
        cg.kill();
      }
      if (!(await cg.waitEmpty({ kill: true, timeoutMs: 60_000 }))) ctx.log('system', `cgroup not empty after 60 s: ${cg.pids().join(' ')}\n`);
      // Nothing of the task can write any more; the pipes hold at most what was written last.
      await within(closed, 10_000);
      child.stdout?.destroy();
      child.stderr?.destroy();
    } else {
      // The leader exited on its own: whatever stayed in its group goes now (it may hold our pipes).
      child.once('exit', () => killGroup(pid, 'SIGKILL'));
      end = await closed;
    }
    ctx.signal.removeEventListener('abort', onAbort);
    const how = stopping ? await stopping : undefined;
    const { code, signal } = end;
    let error: string | undefined;
    if (cg) {
      const usage = cg.usage();
      const u: Record<string, JsonValue> = { cpuNs: usage.cpuNs };
      if (usage.memoryPeakBytes !== undefined) u.memoryPeakBytes = usage.memoryPeakBytes;
      if (usage.memoryBytes !== undefined) u.memoryBytes = usage.memoryBytes;
      ctx.setInfo({ usage: u });
      const ooms = cg.oomKills();
      if (ooms > 0) {
        ctx.log('system', `the kernel OOM-killed ${ooms} process(es) at the memory limit of ${s.limits.memoryBytes} bytes\n`);
        ctx.setInfo({ oomKills: ooms });
        if (code !== 0) error = `OOM-killed: ${ooms} process(es) at the memory limit of ${s.limits.memoryBytes} bytes (${signal ? `leader killed by ${signal}` : `exit code ${code}`})`;
      }
    }
    ctx.log('system', `exited ${signal ? `by ${signal}` : `with code ${code}`}${how === 'kill' ? ' (SIGKILL after grace)' : ''}\n`);
    const outputs: string[] = [];
    for (const o of s.outputs) {
      const p = isAbsolute(o) ? o : join(ctx.workspace, o);
      if (await stat(p).then(() => true, () => false)) outputs.push(p);
    }
    return { exitCode: code, signal, outputs, ...(error ? { error } : {}) };
  }
}

/**
 * Stops a task's cgroup politely: `signal` to every process in it, then the cgroup is killed
 * after `graceMs` if the leader has not exited; once the leader exited the rest is killed.
 */
async function stopCgroup(cg: TaskCgroup, pid: number, exited: Promise<unknown>, graceMs: number, signal: NodeJS.Signals): Promise<'signal' | 'kill' | 'gone'> {
  if (cg.signal(signal) === 0) {
    await exited;
    return 'gone';
  }
  killGroup(pid, signal);
  let killed = false;
  const t = setTimeout(() => {
    killed = true;
    cg.kill();
  }, graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(t);
  }
  cg.kill();
  return killed ? 'kill' : 'signal';
}

/** What `execvp` would run for `command` (PATH lookup for a bare name), or throws {@link ProcessSpawnError}. */
function resolveExecutable(command: string, path: string, cwd: string): string {
  const candidates = command.includes('/') ? [resolvePath(cwd, command)] : path.split(delimiter).filter(Boolean).map((d) => join(resolvePath(cwd, d), command));
  let denied = false;
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') denied = true;
    }
  }
  const code = denied ? 'EACCES' : 'ENOENT';
  throw new ProcessSpawnError(command, `spawn ${command} ${code}`);
}


/**
 * The `process` task executor: runs a command as a child process in its own process group.
 * @module
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { TaskContext, TaskExecutor, TaskResult } from '../task/types.js';
import { childClosed, killGroup, stopGroup } from './group.js';

/** Spec of a `process` task. */
export const ProcessSpecSchema = z.object({
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
});
/** Spec of a `process` task (input form). */
export type ProcessSpec = z.input<typeof ProcessSpecSchema>;

/**
 * Runs `spec.command` detached in its own process group, with stdout/stderr streamed to the
 * task's log files and listeners. On abort (cancel or timeout) the whole group gets the
 * stop signal, then SIGKILL after `ctx.killAfterMs`; `run()` settles only once the leader has
 * exited and its pipes closed. When the leader exits on its own, leftover members of its
 * group are killed too (nothing outlives the task).
 *
 * Environment added: `SMOOTHTASK_TASK_ID`, `SMOOTHTASK_WORKSPACE`, `SMOOTHTASK_ATTEMPT`, one
 * `SMOOTHTASK_LEASE_<RESOURCE>` per lease (ids comma-separated, or the amount), and
 * `CUDA_VISIBLE_DEVICES` for a `gpu` lease.
 */
export class ProcessExecutor implements TaskExecutor<z.output<typeof ProcessSpecSchema>> {
  /** Validates specs at submit. */
  readonly specSchema = ProcessSpecSchema;

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
    const child = s.shell
      ? spawn('/bin/sh', ['-c', s.command, ...s.args], { cwd, env, detached: true, stdio: [s.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
      : spawn(s.command, s.args, { cwd, env, detached: true, stdio: [s.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const closed = childClosed(child);
    closed.catch(() => {});
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(e));
    });
    const pid = child.pid!;
    ctx.setInfo({ pid, pgid: pid });
    ctx.log('system', `spawned pid ${pid}: ${s.shell ? s.command : [s.command, ...s.args].join(' ')}\n`);
    child.stdout!.on('data', (c: Buffer) => ctx.log('stdout', c));
    child.stderr!.on('data', (c: Buffer) => ctx.log('stderr', c));
    if (s.stdin !== undefined) {
      child.stdin!.on('error', () => {});
      child.stdin!.end(s.stdin);
    }
    // The leader exited on its own: whatever stayed in its group goes now (it may hold our pipes).
    child.once('exit', () => killGroup(pid, 'SIGKILL'));
    let stopping: Promise<string> | undefined;
    const onAbort = () => {
      ctx.log('system', `stopping group ${pid}: ${s.stopSignal}, SIGKILL after ${ctx.killAfterMs} ms\n`);
      stopping = stopGroup(child, closed, ctx.killAfterMs, s.stopSignal);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
    const { code, signal } = await closed;
    ctx.signal.removeEventListener('abort', onAbort);
    const how = stopping ? await stopping : undefined;
    ctx.log('system', `exited ${signal ? `by ${signal}` : `with code ${code}`}${how === 'kill' ? ' (SIGKILL after grace)' : ''}\n`);
    const outputs: string[] = [];
    for (const o of s.outputs) {
      const p = isAbsolute(o) ? o : join(ctx.workspace, o);
      if (await stat(p).then(() => true, () => false)) outputs.push(p);
    }
    return { exitCode: code, signal, outputs };
  }
}

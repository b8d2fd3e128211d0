/**
 * Process-group helpers: children are spawned `detached` (own process group, pgid = pid), so
 * `kill(-pid)` reaches every descendant that did not leave the group.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { ProcessSignalError, ProcessSpawnError } from './errors.js';

/** Sends `signal` to the whole group of `pid`; `false` if the group is gone; throws `ProcessSignalError` otherwise. */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ESRCH') return false;
    throw new ProcessSignalError(`kill(-${pid}, ${signal}) failed: ${err.message}`, { cause: e, ...(err.errno !== undefined ? { errno: Math.abs(err.errno) } : {}) });
  }
}

/** Whether any process of the group of `pid` is alive. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How a child ended. */
export interface ChildEnd {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  /** Signal that ended it. */
  signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited and its stdio closed; rejects with `ProcessSpawnError` when it could not start. */
export function childClosed(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      if (child.pid === undefined) reject(spawnError(child, e));
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * Stops a group politely: `signal` (default SIGTERM) to the group, then SIGKILL to the group
 * after `graceMs` if the leader has not closed by then. Resolves with how it ended.
 */
export async function stopGroup(
  child: ChildProcess,
  closed: Promise<unknown>,
  graceMs: number,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<'signal' | 'kill' | 'gone'> {
  const pid = child.pid;
  if (pid === undefined) return 'gone';
  if (!killGroup(pid, signal)) {
    await closed.catch(() => {});
    return 'gone';
  }
  let killed = false;
  const t = setTimeout(() => {
    killed = true;
    killGroup(pid, 'SIGKILL');
  }, graceMs);
  try {
    await closed.catch(() => {});
  } finally {
    clearTimeout(t);
  }
  // Members that ignored the signal and outlived the leader go too.
  killGroup(pid, 'SIGKILL');
  return killed ? 'kill' : 'signal';
}

/** The typed form of a child's spawn failure (the message keeps Node's `spawn <file> ENOENT`). */
export function spawnError(child: ChildProcess, e: unknown): ProcessSpawnError {
  const err = e as NodeJS.ErrnoException;
  return new ProcessSpawnError(child.spawnfile ?? '', err.message, { cause: e, ...(typeof err.errno === 'number' ? { errno: Math.abs(err.errno) } : {}) });
}

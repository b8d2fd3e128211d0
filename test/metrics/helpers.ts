// Ground-truth helpers shared by the metrics tests: child processes the tests create and
// measure, and bounded polling.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { wholeDisk } from '../../lib/metrics/procfs-readers.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A busy-looping single-threaded shell (busybox sh: one thread, so /proc/<pid>/status is the whole process). */
export function spawnBusy(): ChildProcess {
  return spawn('/bin/busybox', ['sh', '-c', 'while :; do :; done'], { stdio: 'ignore' });
}

/** A process that sleeps and wakes every `ms` (voluntary switches). */
export function spawnSleeper(seconds = 30): ChildProcess {
  return spawn('/bin/busybox', ['sleep', String(seconds)], { stdio: 'ignore' });
}

/** Kills and reaps a child. */
export async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGKILL');
  await done;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then returns the last value). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 5000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = await fn();
  while (!v && Date.now() < end) {
    await new Promise((r) => setTimeout(r, stepMs));
    v = await fn();
  }
  return v;
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A shell script named `name` that exits with its first argument: its processes get `name`
 * as comm (the kernel names a script's process after the script), so a comm filter selects
 * exactly them.
 */
export function exitScript(dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, '#!/bin/busybox sh\nexit "$1"\n');
  chmodSync(p, 0o755);
  return p;
}

/** Runs a child to completion; resolves its exit code. */
export function run(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((res, rej) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.once('error', rej);
    c.once('exit', (code) => res(code));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `major:minor` of the whole disk holding `path`. */
export function fileDisk(path: string): string {
  const st = statSync(path);
  const major = Math.floor(st.dev / 256) & 0xfff;
  const minor = (st.dev & 0xff) | ((Math.floor(st.dev / 4096) >>> 8) & ~0xff);
  return wholeDisk(`${major}:${minor}`);
}

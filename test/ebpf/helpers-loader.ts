/** Shared helpers of the loader tests. */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectDir } from '../../lib/native/addon.js';

/** Path of a bundled object (bpf/*.bpf.c). */
export function bundled(name: string): string {
  return join(bpfObjectDir(), `${name}.bpf.o`);
}

/** Path of a test object (test/bpf/*.bpf.c). */
export function testObject(name: string): string {
  return join(bpfObjectDir(), 'test', `${name}.bpf.o`);
}

/** Open fds of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resident set size of this process, bytes. */
export function rssBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Whether the kernel still knows a program id. */
export function progExists(id: number): boolean {
  try {
    execFileSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a python child that makes `n` getpid() syscalls (glibc does not cache getpid) after it
 * reads one line on stdin; `go()` sends the line and resolves when the child has exited.
 */
export function getpidChild(n: number): { pid: number; go: () => Promise<void> } {
  const child = spawn('python3', ['-c', `import os,sys\nsys.stdin.readline()\nfor _ in range(${n}): os.getpid()`], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`python exited ${code}`))));
    child.on('error', reject);
  });
  return {
    pid: child.pid ?? -1,
    go: async () => {
      child.stdin?.end('go\n');
      await exited;
    },
  };
}

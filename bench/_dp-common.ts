/**
 * Shared by bench/ringbuf.ts and bench/maps.ts: builds the small C baselines against libbpf.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Compiles bench/c/<name>.c with cc -O2 against libbpf; returns the binary path. */
export function buildC(name: string): string {
  const out = join(mkdtempSync(join(tmpdir(), 'smoothtask-bench-')), name);
  execFileSync('cc', ['-O2', '-o', out, join(here, 'c', `${name}.c`), '-lbpf'], { stdio: 'inherit' });
  return out;
}

/** Runs a C baseline and parses its "<count> <ns>" line. */
export function runC(bin: string, args: string[]): { count: number; ns: number } {
  const [count, ns] = execFileSync(bin, args, { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  return { count: count ?? 0, ns: ns ?? 0 };
}

/**
 * A snapshot of per-process CPU and memory with 2,000 extra (sleeping) processes on the host:
 * the eBPF process reader (one task-iterator pass) vs the procfs backend vs the
 * `systeminformation` package's `processes()`, all measured in this run.
 *
 *   npm run bench -- snapshot [processes=2000] [rounds=5]
 *
 * Target: eBPF >= 10x faster than systeminformation.
 */
import { spawn } from 'node:child_process';
import si from 'systeminformation';
import type { BenchResult } from './run.js';
import { openProcessReader } from '../lib/metrics/index.js';

async function time(rounds: number, fn: () => Promise<number>, gapMs = 0): Promise<{ medianMs: number; count: number }> {
  const ms: number[] = [];
  let count = 0;
  for (let i = 0; i < rounds; i++) {
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
    const t0 = performance.now();
    count = await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { medianMs: ms[Math.floor(ms.length / 2)]!, count };
}

function countProcesses(): Promise<number> {
  return import('node:fs').then((fs) => fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length);
}

export default async function snapshot(args: string[]): Promise<BenchResult> {
  const n = Number(args[0] ?? 2000);
  const rounds = Number(args[1] ?? 5);
  // One shell forks n sleepers in its own process group: cheap to start, one kill to clean up.
  const before = await countProcesses();
  const group = spawn('/bin/busybox', ['sh', '-c', `i=0; while [ $i -lt ${n} ]; do sleep 600 & i=$((i+1)); done; wait`], { stdio: 'ignore', detached: true });
  const cleanup = (): void => {
    try {
      process.kill(-group.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  process.once('exit', cleanup);
  try {
    const deadline = Date.now() + 60_000;
    while ((await countProcesses()) < before + n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const total = await countProcesses();

    const ebpfReader = await openProcessReader();
    const procfsReader = await openProcessReader({ backend: 'procfs' });
    try {
      await ebpfReader.read(); // warm
      const ebpf = await time(rounds, async () => (await ebpfReader.read()).processes.length);
      const procfs = await time(rounds, async () => (await procfsReader.read()).processes.length);
      // systeminformation returns its previous result when called again within 500 ms: wait
      // longer than that before each timed call so every call does the real work.
      const sys = await time(Math.min(rounds, 3), async () => (await si.processes()).list.length, 600);
      return {
        figures: {
          processesOnHost: total,
          ebpfMs: ebpf.medianMs,
          ebpfProcesses: ebpf.count,
          procfsMs: procfs.medianMs,
          procfsProcesses: procfs.count,
          systeminformationMs: sys.medianMs,
          systeminformationProcesses: sys.count,
          ebpfMemoryBytes: ebpfReader.memoryBytes(),
        },
        ratios: {
          systeminformationOverEbpf: sys.medianMs / ebpf.medianMs,
          procfsOverEbpf: procfs.medianMs / ebpf.medianMs,
          systeminformationOverProcfs: sys.medianMs / procfs.medianMs,
        },
        targets: { ebpfAtLeast10xFasterThanSysteminformation: sys.medianMs / ebpf.medianMs >= 10 },
      };
    } finally {
      ebpfReader.close();
      procfsReader.close();
    }
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/**
 * The monitor's own CPU against procfs `top -b -d 1`, on the same host at the same time:
 * a process running `createMonitor` with every family and reading once a second
 * (bench/_monitor-child.ts) and `top -b -d 1` run side by side; each one's CPU time (utime +
 * stime from /proc/<pid>/stat) is taken over the same window after both started.
 *
 *   npm run bench -- selfcost [seconds=20] [extraProcesses=2000]
 *
 * Two phases: the host as it is (~70 processes here), then with `extraProcesses` sleeping
 * processes added. Target: the monitor uses no more CPU than top in both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const hz = 100; // USER_HZ on Linux

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / hz; // utime, stime (fields 14, 15)
}
const processes = (): number => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function phase(seconds: number): Promise<{ monitorMs: number; topMs: number; families: string; processes: number }> {
  const mon = spawn(process.execPath, ['--import', 'tsx', join(here, '_monitor-child.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const top = spawn('top', ['-b', '-d', '1'], { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, COLUMNS: '200', LINES: '60' } });
  const kill = (c: ChildProcess): void => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  try {
    const families = await new Promise<string>((resolve, reject) => {
      let out = '';
      mon.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^ready (.*)$/m.exec(out);
        if (m) resolve(m[1]!);
      });
      mon.once('exit', (code) => reject(new Error(`monitor child exited ${code}`)));
    });
    await sleep(3000); // both past their start-up
    const m0 = cpuMs(mon.pid!);
    const t0 = cpuMs(top.pid!);
    await sleep(seconds * 1000);
    return { monitorMs: cpuMs(mon.pid!) - m0, topMs: cpuMs(top.pid!) - t0, families, processes: processes() };
  } finally {
    mon.stdin!.end();
    kill(top);
    await sleep(200);
    kill(mon);
  }
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const seconds = Number(args[0] ?? 20);
  const extra = Number(args[1] ?? 2000);
  const quiet = await phase(seconds);
  // One shell forks the sleepers in its own process group: one kill cleans up.
  const group = spawn('/bin/busybox', ['sh', '-c', `i=0; while [ $i -lt ${extra} ]; do sleep 600 & i=$((i+1)); done; wait`], { stdio: 'ignore', detached: true });
  let busy: Awaited<ReturnType<typeof phase>>;
  try {
    const want = quiet.processes + extra;
    for (let i = 0; i < 300 && processes() < want * 0.98; i++) await sleep(100);
    busy = await phase(seconds);
  } finally {
    try {
      process.kill(-group.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const pct = (ms: number): number => (ms / (seconds * 1000)) * 100;
  return {
    figures: {
      seconds,
      families: quiet.families,
      processesQuiet: quiet.processes,
      monitorCpuPctQuiet: pct(quiet.monitorMs),
      topCpuPctQuiet: pct(quiet.topMs),
      processesBusy: busy.processes,
      monitorCpuPctBusy: pct(busy.monitorMs),
      topCpuPctBusy: pct(busy.topMs),
    },
    ratios: { monitorOverTopQuiet: quiet.monitorMs / Math.max(quiet.topMs, 1), monitorOverTopBusy: busy.monitorMs / Math.max(busy.topMs, 1) },
    targets: { atMostTopQuiet: quiet.monitorMs <= quiet.topMs, atMostTopBusy: busy.monitorMs <= busy.topMs },
  };
}

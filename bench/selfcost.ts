/**
 * The monitor's own CPU against procfs `top -b -d 1`, on the same host at the same time:
 * a process running `createMonitor` with every family and reading once a second
 * (bench/_monitor-child.mjs, plain node on the built package) and `top -b -d 1` run side by
 * side; each one's CPU time is taken over the same windows.
 *
 *   npm run bench -- selfcost [seconds=30] [extraProcesses=2000] [warmupSeconds=120] [rounds=3] [monitors=3]
 *
 * Two phases: the host as it is (~70 processes here), then with `extraProcesses` sleeping
 * processes added. Each monitor reports the first `seconds` after it and its `top` started
 * (start-up: the JIT compiling the read path, V8 shrinking the start-up heap) and, after `warmupSeconds`
 * more, `rounds` windows of `seconds` (steady state, what a long-running monitor costs).
 * CPU time is the threads' run time in nanoseconds (schedstat), not 10 ms ticks (see
 * cpuMsBetween).
 *
 * `monitors` monitor processes of the same build are measured in each phase, one after the
 * other, each beside a `top` of its own: one process of the same build costs up to a third more
 * than another (V8's tiering and collection differ from process to process), so a single
 * process's figure says as much about that process as about the code. Each monitor's ratio is
 * its median steady window against its `top` in the same window; the phase's ratio is the
 * median monitor's, with the lowest and the highest beside it. (Not at the same time: each
 * monitor loads its own eBPF programs, so with three side by side every syscall of `top` would
 * run three sets of them, which costs `top` more and flatters the monitors.) Target: the
 * median monitor uses no more CPU than `top` in both phases. The defaults take about 25
 * minutes.
 *
 * The children run on dist/ (built here first when lib/ is newer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The child imports `smoothtask/metrics` (dist/): rebuild it when lib/ changed since. */
function ensureBuilt(): void {
  const out = join(root, 'dist', 'metrics', 'index.js');
  if (existsSync(out) && statSync(out).mtimeMs >= newestMtime(join(root, 'lib'))) return;
  process.stderr.write('selfcost: building dist/ (tsup)\n');
  const r = spawnSync('npx', ['--no-install', 'tsup'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`tsup failed (${r.status ?? r.signal}): run npm run build:ts`);
}
const hz = 100; // USER_HZ on Linux

/** CPU time of a process so far: each live thread's run time (ns) and the process's utime + stime (ms). */
interface CpuSample {
  threads: Map<string, number>;
  ticksMs: number;
}

function cpuSample(pid: number): CpuSample {
  const threads = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      if (Number.isFinite(ns)) threads.set(tid, ns);
    }
  } catch {
    // no schedstat (CONFIG_SCHED_INFO off), or a thread gone between the listing and the read
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { threads, ticksMs: ((Number(f[11]) + Number(f[12])) * 1000) / hz }; // utime, stime (fields 14, 15)
}

/**
 * CPU ms between two samples: the threads' run time in nanoseconds (utime + stime come in
 * 10 ms ticks, which read `top`'s ~90 ms over a 30 s window to ±11 %); a thread born in the
 * window counts whole. A thread that ended in the window took its time with it: when the tick
 * count says more than 20 ms went missing that way, the tick count is used.
 */
function cpuMsBetween(a: CpuSample, b: CpuSample): number {
  let ns = 0;
  for (const [tid, t] of b.threads) ns += t - (a.threads.get(tid) ?? 0);
  const ms = ns / 1e6;
  const ticks = b.ticksMs - a.ticksMs;
  return b.threads.size === 0 || ticks - ms > 20 ? ticks : ms;
}
const processes = (): number => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Window {
  monitorMs: number;
  topMs: number;
}

/** One monitor process beside one `top`: its start-up window and its steady windows. */
interface Run {
  start: Window;
  steady: Window[];
}

interface Phase {
  runs: Run[];
  families: string;
  processes: number;
}

/** One monitor process and one `top` started together, measured over the same windows. */
async function run(seconds: number, warmup: number, rounds: number): Promise<Run & { families: string; processes: number }> {
  const mon = spawn(process.execPath, [join(here, '_monitor-child.mjs')], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const top = spawn('top', ['-b', '-d', '1'], { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, COLUMNS: '200', LINES: '60' } });
  const kill = (c: ChildProcess): void => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const window = async (s: number): Promise<Window> => {
    const m0 = cpuSample(mon.pid!);
    const t0 = cpuSample(top.pid!);
    await sleep(s * 1000);
    return { monitorMs: cpuMsBetween(m0, cpuSample(mon.pid!)), topMs: cpuMsBetween(t0, cpuSample(top.pid!)) };
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
    const start = await window(seconds);
    await sleep(warmup * 1000);
    const steady: Window[] = [];
    for (let i = 0; i < rounds; i++) steady.push(await window(seconds));
    return { start, steady, families, processes: processes() };
  } finally {
    mon.stdin!.end();
    kill(top);
    await sleep(200);
    kill(mon);
  }
}

async function phase(seconds: number, warmup: number, rounds: number, monitors: number): Promise<Phase> {
  const runs: Array<Awaited<ReturnType<typeof run>>> = [];
  for (let i = 0; i < monitors; i++) runs.push(await run(seconds, warmup, rounds));
  return { runs, families: runs[0]!.families, processes: runs[runs.length - 1]!.processes };
}

/** The middle item by `key` (the upper one of an even count). */
const medianBy = <T>(items: T[], key: (x: T) => number): T => [...items].sort((a, b) => key(a) - key(b))[Math.floor(items.length / 2)]!;

/** A phase's steady state: each monitor's median window against its top, and the median monitor. */
function summarize(p: Phase, seconds: number) {
  const pct = (ms: number): number => (ms / (seconds * 1000)) * 100;
  const ratio = (w: Window): number => w.monitorMs / Math.max(w.topMs, 1);
  const perMonitor = p.runs.map((r) => {
    const w = medianBy(r.steady, ratio);
    return { ratio: ratio(w), monitorPct: pct(w.monitorMs), topPct: pct(w.topMs) };
  });
  const mid = medianBy(perMonitor, (m) => m.ratio);
  const startMid = medianBy(
    p.runs.map((r) => r.start),
    ratio,
  );
  return {
    mid,
    perMonitor,
    lowest: Math.min(...perMonitor.map((m) => m.ratio)),
    highest: Math.max(...perMonitor.map((m) => m.ratio)),
    startRatio: ratio(startMid),
    startMonitorPct: pct(startMid.monitorMs),
    startTopPct: pct(startMid.topMs),
  };
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const seconds = Number(args[0] ?? 30);
  const extra = Number(args[1] ?? 2000);
  const warmup = Number(args[2] ?? 120);
  const rounds = Math.max(1, Number(args[3] ?? 3));
  const monitors = Math.max(1, Math.floor(Number(args[4] ?? 3)));
  ensureBuilt();
  const quiet = await phase(seconds, warmup, rounds, monitors);
  // One shell forks the sleepers in its own process group: one kill cleans up.
  const group = spawn('/bin/busybox', ['sh', '-c', `i=0; while [ $i -lt ${extra} ]; do sleep 900 & i=$((i+1)); done; wait`], { stdio: 'ignore', detached: true });
  let busy: Phase;
  try {
    const want = quiet.processes + extra;
    for (let i = 0; i < 300 && processes() < want * 0.98; i++) await sleep(100);
    busy = await phase(seconds, warmup, rounds, monitors);
  } finally {
    try {
      process.kill(-group.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const q = summarize(quiet, seconds);
  const b = summarize(busy, seconds);
  const list = (ms: { ratio: number }[]): string => ms.map((m) => m.ratio.toFixed(2)).join(' ');
  return {
    figures: {
      seconds,
      warmupSeconds: warmup,
      rounds,
      monitors,
      families: quiet.families,
      processesQuiet: quiet.processes,
      monitorCpuPctQuiet: q.mid.monitorPct,
      topCpuPctQuiet: q.mid.topPct,
      monitorCpuPctQuietStart: q.startMonitorPct,
      topCpuPctQuietStart: q.startTopPct,
      monitorOverTopQuietEach: list(q.perMonitor),
      processesBusy: busy.processes,
      monitorCpuPctBusy: b.mid.monitorPct,
      topCpuPctBusy: b.mid.topPct,
      monitorCpuPctBusyStart: b.startMonitorPct,
      topCpuPctBusyStart: b.startTopPct,
      monitorOverTopBusyEach: list(b.perMonitor),
    },
    ratios: {
      monitorOverTopQuiet: q.mid.ratio,
      monitorOverTopQuietLowest: q.lowest,
      monitorOverTopQuietHighest: q.highest,
      monitorOverTopBusy: b.mid.ratio,
      monitorOverTopBusyLowest: b.lowest,
      monitorOverTopBusyHighest: b.highest,
      monitorOverTopQuietStart: q.startRatio,
      monitorOverTopBusyStart: b.startRatio,
    },
    targets: { atMostTopQuiet: q.mid.ratio <= 1, atMostTopBusy: b.mid.ratio <= 1 },
  };
}

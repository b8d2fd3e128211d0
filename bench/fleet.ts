/**
 * Throughput of the fleet: no-op jobs per second through 3 local agents (each a smoothtask agent
 * in its own process, fleet on, a `noop` executor, its own durable store) against 3 bare BullMQ
 * workers with an empty processor, on the same redis-server (started here, loopback), in the
 * same run. Each round starts the 3 nodes, lets them run `warm` warm-up jobs (a node is a
 * long-lived service: its code is measured after the JIT compiled it, not while it does),
 * pauses the queue, fills it, and times the drain; rounds alternate bare and fleet.
 * Target: fleet ≥ 0.5× bare.
 *
 * Also printed: CPU time per job of the three nodes together (each node's own count from
 * `ready` to its stop) and of redis-server (from /proc), for both.
 * `FLEET_BENCH_CPU_PROF=<dir>` writes a V8 CPU profile of each node's measured drain there
 * (`<mode>-<prefix>-<node>.cpuprofile`); `FLEET_BENCH_TIMES=1` prints each node's pid and
 * CLOCK_MONOTONIC time at the drain's start and end (for `perf record -k CLOCK_MONOTONIC`, then
 * `perf report --time <start>,<end>`).
 *
 *   npm run bench -- fleet [jobs=2000] [rounds=3] [concurrency=8] [warm=jobs]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import { bullConnection, FleetProducer, RedisConfigSchema } from '../lib/fleet/index.js';
import { startRedis } from '../test/fleet/redis.js';
import type { BenchResult } from './run.js';

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

interface Node {
  child: ChildProcess;
  /** The node's CPU time (µs) from `ready` to its stop, once it has printed it. */
  cpu: Promise<number>;
}

async function nodes(mode: 'agent' | 'bare', url: string, prefix: string, concurrency: number, dir: string): Promise<Node[]> {
  const kids = [0, 1, 2].map((i) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, '_fleet-node.ts'), mode, url, prefix, `n${i}`, String(concurrency), join(dir, `${prefix}-n${i}`)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => l === 'ready' && resolve());
      child.once('exit', (c) => reject(new Error(`node exited ${c}`)));
    });
    const cpu = new Promise<number>((resolve) => {
      lines.on('line', (l) => l.startsWith('cpu ') && resolve(Number(l.slice(4))));
      child.once('exit', () => resolve(Number.NaN));
    });
    return { child, cpu, ready };
  });
  await Promise.all(kids.map((k) => k.ready));
  return kids;
}

/** CPU time (µs) of a process so far, from /proc (clock ticks of 10 ms). */
function procCpuUs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(v[11]) + Number(v[12])) * 10_000;
}

interface Drained {
  perSec: number;
  /** CPU µs per job: the three nodes together, and redis-server. */
  nodeCpuUs: number;
  redisCpuUs: number;
}

/** Waits until `n` jobs of `q` are completed or failed. */
async function settled(q: Queue, n: number): Promise<void> {
  for (;;) {
    const c = await q.getJobCounts('completed', 'failed');
    if ((c.completed ?? 0) + (c.failed ?? 0) >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Times the drain of the `jobs` waiting in the paused queue `q` (after `warm` warm-up jobs that
 * the nodes already ran), then stops the nodes.
 */
async function drain(kids: Node[], q: Queue, warm: number, jobs: number, redisPid: number | undefined): Promise<Drained> {
  for (const k of kids) k.child.stdin!.write('mark\n');
  const r0 = procCpuUs(redisPid);
  const t0 = performance.now();
  await q.resume();
  await settled(q, warm + jobs);
  const s = (performance.now() - t0) / 1000;
  const r1 = procCpuUs(redisPid);
  for (const k of kids) {
    k.child.removeAllListeners('exit');
    k.child.stdin!.end();
  }
  const cpu = await Promise.all(kids.map((k) => k.cpu));
  await Promise.all(kids.map((k) => new Promise((r) => (k.child.exitCode !== null ? r(null) : k.child.once('exit', r)))));
  return { perSec: jobs / s, nodeCpuUs: cpu.reduce((a, b) => a + b, 0) / jobs, redisCpuUs: (r1 - r0) / jobs };
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const jobs = Number(args[0] ?? 2000);
  const rounds = Number(args[1] ?? 3);
  const concurrency = Number(args[2] ?? 8);
  const warm = Number(args[3] ?? jobs);
  const redis = await startRedis();
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-bench-fleet-'));
  const conn = bullConnection(RedisConfigSchema.parse({ url: redis.url }));
  const bare: number[] = [];
  const fleet: number[] = [];
  const submit: number[] = [];
  const bareCpu: number[] = [];
  const bareRedis: number[] = [];
  const fleetCpu: number[] = [];
  const fleetRedis: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      // Bare BullMQ: three workers run the warm-up jobs, then drain the queue filled with empty jobs.
      {
        const prefix = `bare${r}`;
        const q = new Queue('bare', { connection: conn, prefix });
        const add = async (from: number, n: number) => {
          for (let i = 0; i < n; i += 500) await q.addBulk(Array.from({ length: Math.min(500, n - i) }, (_, j) => ({ name: 'noop', data: { i: from + i + j } })));
        };
        const kids = await nodes('bare', redis.url, prefix, concurrency, dir);
        await add(0, warm);
        await settled(q, warm);
        await q.pause();
        await add(warm, jobs);
        const d = await drain(kids, q, warm, jobs, redis.pid);
        bare.push(d.perSec);
        bareCpu.push(d.nodeCpuUs);
        bareRedis.push(d.redisCpuUs);
        await q.close();
      }
      // The fleet: the same through the producer and three agents.
      {
        const prefix = `fleet${r}`;
        // Every job is kept (the drain is counted from BullMQ's completed set).
        const p = new FleetProducer({ redis: { url: redis.url }, prefix, keepJobs: { count: 10_000_000 } });
        const q = new Queue('tasks-default', { connection: conn, prefix });
        const kids = await nodes('agent', redis.url, prefix, concurrency, dir);
        for (let i = 0; i < warm; i++) await p.submit({ id: `w-${i}`, kind: 'noop' });
        await settled(q, warm);
        await q.pause();
        const t0 = performance.now();
        for (let i = 0; i < jobs; i++) await p.submit({ id: `t-${i}`, kind: 'noop' });
        submit.push(jobs / ((performance.now() - t0) / 1000));
        const d = await drain(kids, q, warm, jobs, redis.pid);
        fleet.push(d.perSec);
        fleetCpu.push(d.nodeCpuUs);
        fleetRedis.push(d.redisCpuUs);
        await q.close();
        await p.close();
      }
      console.log(
        `round ${r + 1}: bare ${bare.at(-1)!.toFixed(0)}/s (CPU per job: nodes ${bareCpu.at(-1)!.toFixed(0)} µs, redis ${bareRedis.at(-1)!.toFixed(0)} µs), ` +
          `fleet ${fleet.at(-1)!.toFixed(0)}/s (nodes ${fleetCpu.at(-1)!.toFixed(0)} µs, redis ${fleetRedis.at(-1)!.toFixed(0)} µs; submit ${submit.at(-1)!.toFixed(0)}/s)`,
      );
    }
  } finally {
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  }
  const ratio = median(fleet) / median(bare);
  return {
    figures: {
      jobs,
      warmUpJobs: warm,
      rounds,
      concurrencyPerNode: concurrency,
      bareJobsPerSecMedian: Math.round(median(bare)),
      bareJobsPerSecMax: Math.round(Math.max(...bare)),
      fleetJobsPerSecMedian: Math.round(median(fleet)),
      fleetJobsPerSecMax: Math.round(Math.max(...fleet)),
      fleetSubmitPerSecMedian: Math.round(median(submit)),
      // CPU per job (µs, median of the rounds): the three nodes together, and redis-server.
      bareNodeCpuUsPerJob: Math.round(median(bareCpu)),
      bareRedisCpuUsPerJob: Math.round(median(bareRedis)),
      fleetNodeCpuUsPerJob: Math.round(median(fleetCpu)),
      fleetRedisCpuUsPerJob: Math.round(median(fleetRedis)),
    },
    ratios: { fleetOverBare: Math.round(ratio * 1000) / 1000, fleetOverBareBest: Math.round((Math.max(...fleet) / Math.max(...bare)) * 1000) / 1000 },
    targets: { fleetAtLeastHalfOfBare: ratio >= 0.5 },
  };
}

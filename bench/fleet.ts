/**
 * Throughput of the fleet: no-op jobs per second through 3 local agents (each a smoothtask agent
 * in its own process, fleet on, a `noop` executor, its own durable store) against 3 bare BullMQ
 * workers with an empty processor, on the same redis-server (started here, loopback), in the
 * same run. Each round fills the queue while it is paused, starts the 3 nodes, and once all
 * listen for jobs resumes the queue and times the drain (no node's start-up is timed); rounds
 * alternate bare and fleet. Target: fleet ≥ 0.5× bare.
 *
 *   npm run bench -- fleet [jobs=2000] [rounds=3] [concurrency=8]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import { bullConnection, FleetProducer, RedisConfigSchema } from '../lib/fleet/index.js';
import { startRedis } from '../test/fleet/redis.js';
import type { BenchResult } from './run.js';

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function nodes(mode: 'agent' | 'bare', url: string, prefix: string, concurrency: number, dir: string): Promise<ChildProcess[]> {
  const kids = [0, 1, 2].map((i) =>
    spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '_fleet-node.ts'), mode, url, prefix, `n${i}`, String(concurrency), join(dir, `${prefix}-n${i}`)], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  await Promise.all(
    kids.map(
      (k) =>
        new Promise<void>((resolve, reject) => {
          createInterface({ input: k.stdout! }).on('line', (l) => l === 'ready' && resolve());
          k.once('exit', (c) => reject(new Error(`node exited ${c}`)));
        }),
    ),
  );
  return kids;
}

async function drain(kids: ChildProcess[], q: Queue, jobs: number): Promise<number> {
  const t0 = performance.now();
  await q.resume();
  for (;;) {
    const c = await q.getJobCounts('completed', 'failed');
    if ((c.completed ?? 0) + (c.failed ?? 0) >= jobs) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const s = (performance.now() - t0) / 1000;
  for (const k of kids) {
    k.removeAllListeners('exit');
    k.stdin!.end();
  }
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.once('exit', r)))));
  return jobs / s;
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const jobs = Number(args[0] ?? 2000);
  const rounds = Number(args[1] ?? 3);
  const concurrency = Number(args[2] ?? 8);
  const redis = await startRedis();
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-bench-fleet-'));
  const conn = bullConnection(RedisConfigSchema.parse({ url: redis.url }));
  const bare: number[] = [];
  const fleet: number[] = [];
  const submit: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      // Bare BullMQ: the queue filled with empty jobs, then three workers drain it.
      {
        const prefix = `bare${r}`;
        const q = new Queue('bare', { connection: conn, prefix });
        await q.pause();
        for (let i = 0; i < jobs; i += 500) await q.addBulk(Array.from({ length: Math.min(500, jobs - i) }, (_, j) => ({ name: 'noop', data: { i: i + j } })));
        const kids = await nodes('bare', redis.url, prefix, concurrency, dir);
        bare.push(await drain(kids, q, jobs));
        await q.close();
      }
      // The fleet: the same number of no-op tasks through the producer, then three agents.
      {
        const prefix = `fleet${r}`;
        const p = new FleetProducer({ redis: { url: redis.url }, prefix });
        const q = new Queue('tasks-default', { connection: conn, prefix });
        await q.pause();
        const t0 = performance.now();
        for (let i = 0; i < jobs; i++) await p.submit({ id: `t-${i}`, kind: 'noop' });
        submit.push(jobs / ((performance.now() - t0) / 1000));
        const kids = await nodes('agent', redis.url, prefix, concurrency, dir);
        fleet.push(await drain(kids, q, jobs));
        await q.close();
        await p.close();
      }
      console.log(`round ${r + 1}: bare ${bare.at(-1)!.toFixed(0)}/s, fleet ${fleet.at(-1)!.toFixed(0)}/s (submit ${submit.at(-1)!.toFixed(0)}/s)`);
    }
  } finally {
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  }
  const ratio = median(fleet) / median(bare);
  return {
    figures: {
      jobs,
      rounds,
      concurrencyPerNode: concurrency,
      bareJobsPerSecMedian: Math.round(median(bare)),
      bareJobsPerSecMax: Math.round(Math.max(...bare)),
      fleetJobsPerSecMedian: Math.round(median(fleet)),
      fleetJobsPerSecMax: Math.round(Math.max(...fleet)),
      fleetSubmitPerSecMedian: Math.round(median(submit)),
    },
    ratios: { fleetOverBare: Math.round(ratio * 1000) / 1000, fleetOverBareBest: Math.round((Math.max(...fleet) / Math.max(...bare)) * 1000) / 1000 },
    targets: { fleetAtLeastHalfOfBare: ratio >= 0.5 },
  };
}

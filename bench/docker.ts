/**
 * Start-to-exit latency of a trivial container task (`true` in smoothtask/busybox:latest)
 * through the task queue and the container executor, against `docker run --rm` of the same
 * image and command, measured in the same run, interleaved so load changes hit both alike.
 *
 *   npm run bench -- docker [runs=15]
 *
 * Our path does more than `docker run --rm`: a workspace, log files, labels, an attach
 * stream, an inspect for the cgroup id, the remove and an outputs check.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchResult } from './run.js';
import { connectDocker, registerDockerExecutors, runContainer, taskPaths } from '../lib/docker/index.js';
import { TaskQueue } from '../lib/task/index.js';

const IMAGE = 'smoothtask/busybox:latest';

function dockerRun(): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('docker', ['run', '--rm', IMAGE, 'true'], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker run exited ${code}`))));
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

export default async function bench(args: string[]): Promise<BenchResult> {
  const runs = Number(args[0] ?? 15);
  const engine = await connectDocker();
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-bench-docker-'));
  const queue = new TaskQueue({ concurrency: 1, dataDir: join(dir, 'queue') });
  registerDockerExecutors(queue, { engine });
  await queue.ready;
  const task: number[] = [];
  const direct: number[] = [];
  const cli: number[] = [];
  try {
    // Warm-up: first container start and CLI start pay one-off costs.
    await dockerRun();
    await queue.submit({ kind: 'container', spec: { image: IMAGE, command: ['true'] } }).done;
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await dockerRun();
      cli.push(performance.now() - t);

      t = performance.now();
      const rec = await queue.submit({ kind: 'container', spec: { image: IMAGE, command: ['true'] } }).done;
      task.push(performance.now() - t);
      if (rec.state !== 'succeeded') throw new Error(`bench task ended ${rec.state}: ${rec.error?.message}`);

      t = performance.now();
      await runContainer(engine, { image: IMAGE, command: ['true'] }, { taskId: `bench-${i}`, ...taskPaths(join(dir, 'direct'), `bench-${i}`) });
      direct.push(performance.now() - t);
    }
  } finally {
    await queue.close();
    await rm(dir, { recursive: true, force: true });
  }
  const ratio = median(task) / median(cli);
  return {
    figures: {
      runs,
      dockerRunRmMedianMs: median(cli),
      dockerRunRmP90Ms: pct(cli, 90),
      queueTaskMedianMs: median(task),
      queueTaskP90Ms: pct(task, 90),
      runContainerMedianMs: median(direct),
      runContainerP90Ms: pct(direct, 90),
    },
    ratios: {
      queueTaskOverDockerRun: ratio,
      runContainerOverDockerRun: median(direct) / median(cli),
    },
    targets: { 'queueTaskOverDockerRun<=1.2': ratio <= 1.2 },
  };
}

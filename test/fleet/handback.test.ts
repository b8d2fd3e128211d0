/**
 * Hand-back on close: a node that closes while a job runs on it cancels its local run and
 * puts the job back in the fleet's queue, and another node runs it to the end (at-least-once).
 * Real redis-server, two nodes in this process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetProducer, FleetWorker } from '../../lib/fleet/index.js';
import { ProcessExecutor } from '../../lib/process/executor.js';
import { TaskQueue } from '../../lib/task/queue.js';
import { startRedis, type RedisServer } from './redis.js';

let redis: RedisServer;
let dir: string;
let producer: FleetProducer;
const prefix = 'handback';
const nodes: Array<{ queue: TaskQueue; worker: FleetWorker }> = [];

async function startNode(name: string): Promise<{ queue: TaskQueue; worker: FleetWorker }> {
  const queue = new TaskQueue({ concurrency: 2, dataDir: join(dir, name) });
  queue.registerExecutor('process', new ProcessExecutor());
  const worker = new FleetWorker(queue, { redis: { url: redis.url }, prefix, classes: ['default'], concurrency: 2, placementRetryMs: 100, cancelCheckMs: 500 }, { name, url: `http://${name}.invalid:7700`, labels: {}, gpus: 0 });
  await worker.start();
  const n = { queue, worker };
  nodes.push(n);
  return n;
}

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'st-fleet-handback-'));
  producer = new FleetProducer({ redis: { url: redis.url }, prefix, pollMs: 100 });
});

afterAll(async () => {
  await producer?.close();
  for (const n of nodes) {
    await n.worker.close();
    await n.queue.close();
  }
  await redis?.close();
  await rm(dir, { recursive: true, force: true });
});

const fleetOf = (r: { info: Record<string, unknown> }) => r.info.fleet as { node: string; run: number };

describe('a closing node hands its running jobs back', () => {
  it('close(0) while a job runs on node A: A stops its process, node B runs the job to the end', async () => {
    const a = await startNode('node-a');
    const h = await producer.submit({ id: 'handed-1', kind: 'process', spec: { command: '/bin/sh', args: ['-c', 'sleep 2; echo done'] }, timeoutMs: 60_000 });
    // Running on A (the only node so far), with a pid.
    let pid: number | undefined;
    for (let i = 0; i < 200 && pid === undefined; i++) {
      pid = a.queue.get('handed-1')?.info.pid as number | undefined;
      if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(pid, 'the job started on node A').toBeTypeOf('number');
    expect(fleetOf((await producer.get('handed-1'))!).node).toBe('node-a');

    await startNode('node-b');
    await a.worker.close(0);
    // A's process is gone (cancelled locally), and A no longer holds the task.
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(pid!, 0);
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        alive = false;
      }
    }
    expect(alive, 'node A stopped its run').toBe(false);

    const rec = await h.done;
    expect(rec.state).toBe('succeeded');
    expect(fleetOf(rec).node).toBe('node-b');
    expect(fleetOf(rec).run).toBeGreaterThanOrEqual(2);
    // One final state in the fleet's records, on B's queue too.
    const bLocal = nodes[1]!.queue.get('handed-1');
    expect(bLocal?.state).toBe('succeeded');
  }, 60_000);
});

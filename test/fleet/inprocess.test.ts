/**
 * The fleet's producer and workers against a real redis-server, with three nodes in this
 * process (each its own TaskQueue and ProcessExecutor): placement by class and labels, one
 * final state per job, cancellation that reaches the node running the job, refusals.
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
const nodes: Array<{ name: string; queue: TaskQueue; worker: FleetWorker }> = [];
let producer: FleetProducer;
const prefix = 'inproc';

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'st-fleet-'));
  const spec = [
    { name: 'node-a', classes: ['default', 'gpu'], labels: { zone: 'a' }, gpus: 1 },
    { name: 'node-b', classes: ['default'], labels: { zone: 'b' }, gpus: 0 },
    { name: 'node-c', classes: ['default'], labels: { zone: 'b' }, gpus: 0 },
  ];
  for (const s of spec) {
    const queue = new TaskQueue({ concurrency: 4, dataDir: join(dir, s.name) });
    queue.registerExecutor('process', new ProcessExecutor());
    const worker = new FleetWorker(queue, { redis: { url: redis.url }, prefix, classes: s.classes, concurrency: 4, placementRetryMs: 100, cancelCheckMs: 500 }, { name: s.name, url: `http://${s.name}.invalid:7700`, labels: s.labels, gpus: s.gpus });
    await worker.start();
    nodes.push({ name: s.name, queue, worker });
  }
  producer = new FleetProducer({ redis: { url: redis.url }, prefix, pollMs: 200 });
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

const fleetOf = (r: { info: Record<string, unknown> }) => r.info.fleet as { node: string; class: string; agentUrl: string; run: number };

describe('fleet in one process', () => {
  it('90 jobs over three nodes: each ends once, GPU jobs only on the GPU node, zone jobs only in their zone', async () => {
    const handles = [];
    for (let i = 0; i < 60; i++) handles.push(await producer.submit({ id: `d-${i}`, kind: 'process', spec: { command: '/bin/sh', args: ['-c', `echo ${i}`] } }));
    for (let i = 0; i < 15; i++) handles.push(await producer.submit({ id: `g-${i}`, kind: 'process', spec: { command: '/bin/true' }, placement: { class: 'gpu', gpus: 1 } }));
    for (let i = 0; i < 15; i++) handles.push(await producer.submit({ id: `z-${i}`, kind: 'process', spec: { command: '/bin/true' }, placement: { labels: { zone: 'b' } } }));
    const recs = await Promise.all(handles.map((h) => h.done));
    expect(recs.map((r) => r.state)).toEqual(recs.map(() => 'succeeded'));
    const by = new Map<string, number>();
    for (const r of recs) by.set(fleetOf(r).node, (by.get(fleetOf(r).node) ?? 0) + 1);
    console.log('jobs per node', Object.fromEntries(by));
    for (const r of recs.filter((x) => x.id.startsWith('g-'))) expect(fleetOf(r).node).toBe('node-a');
    for (const r of recs.filter((x) => x.id.startsWith('z-'))) expect(['node-b', 'node-c']).toContain(fleetOf(r).node);
    expect(fleetOf(recs[0]!).agentUrl).toMatch(/^http:\/\/node-.\.invalid:7700$/);
    // The record in Redis is the one the node's own queue has.
    const local = nodes.find((n) => n.name === fleetOf(recs[0]!).node)!.queue.get(recs[0]!.id)!;
    expect(local.state).toBe('succeeded');
    const listed = await producer.list({ state: 'succeeded' });
    expect(listed.length).toBeGreaterThanOrEqual(90);
  });

  it('a cancel from the producer reaches the node that runs the job; a waiting job is removed', async () => {
    const h = await producer.submit({ id: 'long-1', kind: 'process', spec: { command: '/bin/sleep', args: ['30'] } });
    let rec;
    for (let i = 0; i < 100; i++) {
      rec = await producer.get('long-1');
      if (rec?.state === 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(rec?.state).toBe('running');
    const node = nodes.find((n) => n.name === fleetOf(rec!).node)!;
    // 'running' is recorded before the executor spawns the process and reports its pid
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      pid = node.queue.get('long-1')?.info.pid as number | undefined;
      if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(pid).toBeGreaterThan(0);
    expect(await producer.cancel('long-1', 'test')).toBe(true);
    const end = await h.done;
    expect(end.state).toBe('cancelled');
    expect(() => process.kill(pid!, 0)).toThrow();
    expect(await producer.cancel('long-1')).toBe(false);
    // Nobody serves class 'none': the job waits, and a cancel removes it.
    const w = await producer.submit({ id: 'wait-1', kind: 'process', spec: { command: '/bin/true' }, placement: { class: 'none' } });
    expect(await producer.cancel('wait-1')).toBe(true);
    expect((await w.done).state).toBe('cancelled');
  });

  it('refusals: ids that exist or are all digits, triggers and hold; a kind no node runs fails with the node’s reason', async () => {
    await expect(producer.submit({ id: 'd-0', kind: 'process', spec: { command: '/bin/true' } })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await expect(producer.submit({ id: '12345', kind: 'process' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await expect(producer.submit({ kind: 'process', hold: true })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    const h = await producer.submit({ id: 'nokind-1', kind: 'nosuchkind', spec: null });
    const r = await h.done;
    expect(r.state).toBe('failed');
    expect(r.error?.message).toMatch(/nosuchkind/);
  });
});

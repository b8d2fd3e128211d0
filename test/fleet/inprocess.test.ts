/**
 * The fleet's producer and workers against a real redis-server, with three nodes in this
 * process (each its own TaskQueue and ProcessExecutor): placement by class and labels, one
 * final state per job, cancellation that reaches the node running the job, refusals, and the
 * hand-back of a running job by a node that closes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { FleetProducer, FleetWorker, RedisConfigSchema, redisOptions, type FleetWorkerOptions } from '../../lib/fleet/index.js';
import { FleetRecords } from '../../lib/fleet/protocol.js';
import { ProcessExecutor } from '../../lib/process/executor.js';
import { TaskQueue } from '../../lib/task/queue.js';
import { startRedis, type RedisServer } from './redis.js';

let redis: RedisServer;
let dir: string;
const nodes: Array<{ name: string; queue: TaskQueue; worker: FleetWorker }> = [];
let producer: FleetProducer;
const prefix = 'inproc';

/** A node in this process (its own TaskQueue with a ProcessExecutor, and a FleetWorker) on `fleetPrefix`; closed by afterAll. */
async function startNode(s: { name: string; classes: string[]; labels: Record<string, string>; gpus: number }, fleetPrefix: string, extra: Partial<FleetWorkerOptions> = {}) {
  const queue = new TaskQueue({ concurrency: 4, dataDir: join(dir, `${fleetPrefix}-${s.name}`) });
  queue.registerExecutor('process', new ProcessExecutor());
  const worker = new FleetWorker(queue, { redis: { url: redis.url }, prefix: fleetPrefix, classes: s.classes, concurrency: 4, placementRetryMs: 100, cancelCheckMs: 500, ...extra }, { name: s.name, url: `http://${s.name}.invalid:7700`, labels: s.labels, gpus: s.gpus });
  await worker.start();
  const n = { name: s.name, queue, worker };
  nodes.push(n);
  return n;
}

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'st-fleet-'));
  const spec = [
    { name: 'node-a', classes: ['default', 'gpu'], labels: { zone: 'a' }, gpus: 1 },
    { name: 'node-b', classes: ['default'], labels: { zone: 'b' }, gpus: 0 },
    { name: 'node-c', classes: ['default'], labels: { zone: 'b' }, gpus: 0 },
  ];
  for (const s of spec) await startNode(s, prefix);
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

/** The pid of a task running on `queue`, once it has one (undefined after 10 s). */
async function pidOf(queue: TaskQueue, id: string): Promise<number | undefined> {
  for (let i = 0; i < 200; i++) {
    const pid = queue.get(id)?.info.pid as number | undefined;
    if (pid !== undefined) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/** True once process `pid` is gone, false if it still runs after `ms`. */
async function gone(pid: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
  }
  return false;
}

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

  it('records: a write of an older run or over a final record is refused, whatever the stored key order', async () => {
    const rec = await (await producer.submit({ id: 'rec-order-1', kind: 'process', spec: { command: '/bin/true' } })).done;
    const conn = new Redis(redisOptions(RedisConfigSchema.parse({ url: redis.url })));
    try {
      const records = new FleetRecords(conn, 'recorder');
      const key = records.keys.record(rec.id);
      const running = { ...rec, state: 'running' as const, outcome: undefined };
      expect(await records.create({ ...running, state: 'queued' })).toBe(true);
      expect(await records.put(running, 2)).toBe(true);
      expect((await conn.get(key))!.startsWith('{"run":2,"final":false,"rec":{')).toBe(true);
      expect(await records.put(running, 1)).toBe(false); // an older run
      // Written by something else, in another key order: decoded, same rules.
      await conn.set(key, JSON.stringify({ final: false, rec: running, run: 5 }));
      expect(await records.put(running, 3)).toBe(false);
      expect(await records.put(running, 6)).toBe(true);
      await conn.set(key, JSON.stringify({ rec, final: true, run: 1 }));
      expect(await records.put(running, 7)).toBe(false);
      expect((await records.begin(rec.id)).final).toBe(true);
      expect(await records.put(rec, 7)).toBe(false); // final already, by either path
      await conn.set(key, JSON.stringify({ run: 1, final: true, rec }));
      expect((await records.begin(rec.id)).final).toBe(true);
      expect(await records.put(running, 9)).toBe(false);
    } finally {
      conn.disconnect();
    }
  });
});

describe('a producer that never reads done', () => {
  it('neither listens to events nor polls; reading done starts both and settles with the final record', async () => {
    await startNode({ name: 'lazy-node', classes: ['default'], labels: {}, gpus: 0 }, 'lazydone');
    const p = new FleetProducer({ redis: { url: redis.url }, prefix: 'lazydone', pollMs: 100 });
    const conn = new Redis(redis.url);
    const subscribers = async () => Number(((await conn.pubsub('NUMSUB', 'lazydone:fleet:events')) as [string, number])[1]);
    try {
      const h = await p.submit({ id: 'lazy-1', kind: 'process', spec: { command: '/bin/true' } });
      // The job runs to its end while nobody waits for it.
      let rec = await p.get('lazy-1');
      for (let i = 0; i < 200 && rec?.state !== 'succeeded'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        rec = await p.get('lazy-1');
      }
      expect(rec?.state).toBe('succeeded');
      expect(await subscribers()).toBe(0);
      const done = h.done;
      expect(h.done).toBe(done);
      // Settled from the record (already final); the listening starts beside it.
      expect((await done).state).toBe('succeeded');
      let n = await subscribers();
      for (let i = 0; i < 100 && n === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        n = await subscribers();
      }
      expect(n).toBe(1);
    } finally {
      conn.disconnect();
      await p.close();
    }
  });

  it('after close(): an unread done resolves with the record written at the submit; wait() and handle() refuse', async () => {
    const p = new FleetProducer({ redis: { url: redis.url }, prefix: 'lazydone', pollMs: 100 });
    const h = await p.submit({ id: 'lazy-2', kind: 'process', spec: { command: '/bin/true' }, placement: { class: 'nobody' } });
    await p.close();
    const rec = await Promise.race([h.done, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 2000))]);
    expect(rec).toMatchObject({ id: 'lazy-2', state: 'queued' });
    await expect(p.wait('lazy-2')).rejects.toMatchObject({ code: 'ERR_FLEET_CLOSED' });
    expect(() => p.handle('lazy-2')).toThrow(expect.objectContaining({ code: 'ERR_FLEET_CLOSED' }));
  });
});

describe('a closing node hands its running jobs back', () => {
  it('close(0) while a job runs on node A: A stops its process, node B runs the job to the end', async () => {
    // Its own prefix: only the nodes started here take its jobs.
    const other = new FleetProducer({ redis: { url: redis.url }, prefix: 'handback', pollMs: 100 });
    const node = (name: string) => startNode({ name, classes: ['default'], labels: {}, gpus: 0 }, 'handback');
    const a = await node('node-a');
    const h = await other.submit({ id: 'handed-1', kind: 'process', spec: { command: '/bin/sh', args: ['-c', 'sleep 2; echo done'] }, timeoutMs: 60_000 });
    // Running on A (the only node so far), with a pid.
    const pid = await pidOf(a.queue, 'handed-1');
    expect(pid, 'the job started on node A').toBeTypeOf('number');
    // The fleet's record says so once the node writes the running state (transitionDelayMs after it).
    let where: string | undefined;
    for (let i = 0; i < 100 && where === undefined; i++) {
      const r = await other.get('handed-1');
      if (r?.state === 'running') where = fleetOf(r).node;
      else await new Promise((res) => setTimeout(res, 20));
    }
    expect(where).toBe('node-a');

    const b = await node('node-b');
    await a.worker.close(0);
    // A's process is gone (cancelled locally), and A no longer holds the task.
    expect(await gone(pid!, 5000), 'node A stopped its run').toBe(true);

    const rec = await h.done;
    expect(rec.state).toBe('succeeded');
    expect(fleetOf(rec).node).toBe('node-b');
    expect(fleetOf(rec).run).toBeGreaterThanOrEqual(2);
    // One final state in the fleet's records, on B's queue too.
    const bLocal = b.queue.get('handed-1');
    expect(bLocal?.state).toBe('succeeded');
    await other.close();
  }, 60_000);
});

describe('a node that loses a running job\'s lock', () => {
  it('stops its own run; BullMQ finds the job stalled and it runs again to one final state', async () => {
    const other = new FleetProducer({ redis: { url: redis.url }, prefix: 'lockloss', pollMs: 100 });
    const a = await startNode({ name: 'node-a', classes: ['default'], labels: {}, gpus: 0 }, 'lockloss', { lockDurationMs: 1000, stalledIntervalMs: 1000 });
    // The first run marks a file and sleeps; a second run finds the mark and succeeds at once.
    const mark = join(dir, 'lockloss-mark');
    const h = await other.submit({ id: 'lost-1', kind: 'process', spec: { command: '/bin/sh', args: ['-c', `if [ -e '${mark}' ]; then echo again; exit 0; fi; : > '${mark}'; exec sleep 30`] }, timeoutMs: 60_000 });
    const pid = await pidOf(a.queue, 'lost-1');
    expect(pid, 'the job started on node A').toBeTypeOf('number');
    // Cut the node off from its lock, as a network partition longer than lockDurationMs would.
    const conn = new Redis(redisOptions(RedisConfigSchema.parse({ url: redis.url })));
    try {
      expect(await conn.del('lockloss:tasks-default:lost-1:lock')).toBe(1);
    } finally {
      conn.disconnect();
    }
    // The node notices at its next renewal and stops the first run, long before its 30 s.
    expect(await gone(pid!, 10_000), 'node A stopped the run whose lock it lost').toBe(true);
    const rec = await h.done;
    expect(rec.state).toBe('succeeded');
    expect(fleetOf(rec).run).toBeGreaterThanOrEqual(2);
    expect(rec.history.filter((t) => t.to === 'succeeded' || t.to === 'cancelled' || t.to === 'failed')).toHaveLength(1);
    expect(a.queue.get('lost-1')?.state).toBe('succeeded');
    await other.close();
  }, 60_000);
});

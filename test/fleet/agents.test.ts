/**
 * A fleet of three `smoothtask agent` processes on one real redis-server (loopback): 300 jobs,
 * an agent SIGKILLed mid-job, redis-server restarted mid-run, and a cancel that reaches the
 * node running the job.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetProducer } from '../../lib/fleet/index.js';
import type { TaskRecord } from '../../lib/task/types.js';
import { isOutcome } from '../../lib/task/states.js';
import { createServer, type Server } from 'node:http';
import { ADMIN_TOKEN, killHard, startFleetAgent, stopAgent, type AgentProc } from './agents.js';
import { startRedis, type RedisServer } from './redis.js';

let redis: RedisServer;
let dir: string;
let producer: FleetProducer;
const agents: AgentProc[] = [];
let receiver: Server;
const received: Array<{ id: string; type: string; data: any }> = [];
const prefix = 'fleet3';

beforeAll(async () => {
  redis = await startRedis({ persist: true });
  dir = await mkdtemp(join(tmpdir(), 'st-fleet3-'));
  agents.push(
    ...(await Promise.all([
      startFleetAgent(dir, redis.url, prefix, { name: 'node-a', classes: ['default', 'gpu'], labels: { zone: 'a' }, gpus: 1 }),
      startFleetAgent(dir, redis.url, prefix, { name: 'node-b', classes: ['default'], labels: { zone: 'b' } }),
      startFleetAgent(dir, redis.url, prefix, { name: 'node-c', classes: ['default'], labels: { zone: 'b' } }),
    ])),
  );
  producer = new FleetProducer({ redis: { url: redis.url }, prefix, pollMs: 250 });
  // One webhook receiver, registered with every agent (each signs with its own secret).
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ id: String(req.headers['webhook-id']), ...(JSON.parse(body) as { type: string; data: any }) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  for (const a of agents) {
    const r = await fetch(`${a.url}/v1/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: hook, types: ['task.*'] }) });
    expect(r.status).toBe(201);
  }
}, 180_000);

afterAll(async () => {
  await new Promise((r) => receiver?.close(r));
  await producer?.close();
  await Promise.all(agents.map((a) => stopAgent(a)));
  await redis?.close();
  await rm(dir, { recursive: true, force: true });
});

const fleetOf = (r: TaskRecord) => r.info.fleet as { node: string; class: string; agentUrl: string; run: number };
const outcomes = (r: TaskRecord) => r.history.filter((h) => isOutcome(h.to));

function findPid(argv: string[]): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === argv.join('\0') + '\0') return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

async function until<T>(f: () => Promise<T | undefined | false>, what: string, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a fleet of three agents', () => {
  it('300 jobs: each ends in exactly one final state, on a node of the right class and labels; none is lost', async () => {
    const handles = [];
    for (let i = 0; i < 240; i++) handles.push(await producer.submit({ id: `j-${i}`, kind: 'process', spec: { command: '/bin/true' } }));
    for (let i = 0; i < 30; i++) handles.push(await producer.submit({ id: `gpu-${i}`, kind: 'process', spec: { command: '/bin/true' }, placement: { class: 'gpu', gpus: 1 } }));
    for (let i = 0; i < 30; i++) handles.push(await producer.submit({ id: `zb-${i}`, kind: 'process', spec: { command: '/bin/true' }, placement: { labels: { zone: 'b' } } }));
    const recs = await Promise.all(handles.map((h) => h.done));
    expect(recs).toHaveLength(300);
    expect(new Set(recs.map((r) => r.id)).size).toBe(300);
    for (const r of recs) {
      expect(r.state, r.id).toBe('succeeded');
      expect(outcomes(r), r.id).toHaveLength(1);
    }
    const per: Record<string, number> = {};
    for (const r of recs) per[fleetOf(r).node] = (per[fleetOf(r).node] ?? 0) + 1;
    console.log('jobs per node', per);
    expect(Object.keys(per).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    for (const r of recs.filter((x) => x.id.startsWith('gpu-'))) expect(fleetOf(r).node).toBe('node-a');
    for (const r of recs.filter((x) => x.id.startsWith('zb-'))) expect(['node-b', 'node-c']).toContain(fleetOf(r).node);
    // Where the logs are: the agent that ran it serves the task (its own record, same id).
    const r0 = recs[0]!;
    const a = agents.find((x) => x.name === fleetOf(r0).node)!;
    expect(fleetOf(r0).agentUrl).toBe(a.url);
    expect((await producer.list({ state: 'succeeded' })).length).toBeGreaterThanOrEqual(300);
  });

  it('a cancel from the producer reaches the job on whichever agent runs it, and its process is gone', async () => {
    const h = await producer.submit({ id: 'cancel-me', kind: 'process', spec: { command: '/bin/sleep', args: ['61.25'] } });
    await until(async () => (await producer.get('cancel-me'))?.state === 'running', 'the job running');
    // The task's process, wherever it runs (all agents are on this host): found by its command line.
    const pid = await until(async () => findPid(['/bin/sleep', '61.25']), 'its process');
    expect(await producer.cancel('cancel-me', 'from the test')).toBe(true);
    const end = await h.done;
    expect(end.state).toBe('cancelled');
    expect(outcomes(end)).toHaveLength(1);
    await until(async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the process gone', 10_000);
  });

  it('redis-server restarted mid-run: producers and agents reconnect, nothing is lost', async () => {
    const handles = [];
    for (let i = 0; i < 60; i++) handles.push(await producer.submit({ id: `rr-${i}`, kind: 'process', spec: { command: '/bin/sleep', args: ['0.3'] } }));
    await until(async () => (await producer.list({ state: 'succeeded' })).filter((r) => r.id.startsWith('rr-')).length >= 10 || undefined, 'some done');
    await redis.stop();
    await new Promise((r) => setTimeout(r, 1500));
    await redis.start();
    const recs = await Promise.all(handles.map((h) => h.done));
    for (const r of recs) {
      expect(r.state, r.id).toBe('succeeded');
      expect(outcomes(r), r.id).toHaveLength(1);
    }
    // A submit after the restart works too.
    expect((await (await producer.submit({ id: 'after-restart', kind: 'process', spec: { command: '/bin/true' } })).done).state).toBe('succeeded');
  });

  it('an agent SIGKILLed mid-job: BullMQ finds its jobs stalled and they finish on another agent', async () => {
    const handles = [];
    for (let i = 0; i < 12; i++) handles.push(await producer.submit({ id: `k-${i}`, kind: 'process', spec: { command: '/bin/sleep', args: ['2'] } }));
    const victim = agents.find((a) => a.name === 'node-c')!;
    const onVictim = await until(async () => {
      const rs = (await producer.list({ state: 'running' })).filter((r) => r.id.startsWith('k-') && fleetOf(r).node === 'node-c');
      return rs.length ? rs : undefined;
    }, 'a job running on node-c');
    // node-c has told the receiver that it runs them before it dies.
    await until(async () => onVictim.every((v) => received.some((m) => m.type === 'task.running' && m.data.id === v.id && m.data.source === 'node-c')), 'node-c’s task.running webhooks', 10_000);
    killHard(victim);
    const recs = await Promise.all(handles.map((h) => h.done));
    for (const r of recs) {
      expect(r.state, r.id).toBe('succeeded');
      expect(outcomes(r), r.id).toHaveLength(1);
    }
    for (const v of onVictim) {
      const r = recs.find((x) => x.id === v.id)!;
      expect(fleetOf(r).node, r.id).not.toBe('node-c');
      expect(fleetOf(r).run, r.id).toBeGreaterThan(fleetOf(v).run);
    }
    // The webhooks of a task run twice (node-c, then another node) carry one webhook-id per event:
    // receivers deduplicate. Different events never share an id.
    await until(async () => onVictim.every((v) => received.some((m) => m.type === 'task.succeeded' && m.data.id === v.id)), 'the succeeded webhooks', 10_000);
    for (const v of onVictim) {
      const running = received.filter((m) => m.type === 'task.running' && m.data.id === v.id && m.data.attempt === 1);
      expect(new Set(running.map((m) => m.data.source)).size, v.id).toBe(2);
      expect(new Set(running.map((m) => m.id)).size, v.id).toBe(1);
    }
    const byId = new Map<string, Set<string>>();
    for (const m of received) byId.set(m.id, (byId.get(m.id) ?? new Set()).add(`${m.type} ${m.data.id} ${m.data.attempt}`));
    for (const [id, events] of byId) expect([...events], id).toHaveLength(1);
    console.log(`ran again elsewhere: ${onVictim.map((v) => `${v.id} -> ${fleetOf(recs.find((x) => x.id === v.id)!).node}`).join(', ')}`);
    // node-c restarted on its data folder: it recorded nothing of the fleet jobs it was running
    // (persist: 'outcome'), so its recovery runs none of them a second time.
    const again = await startFleetAgent(dir, redis.url, prefix, { name: 'node-c', classes: ['default'], labels: { zone: 'b' } });
    agents.push(again);
    const listed = (await (await fetch(`${again.url}/v1/tasks?limit=500`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { items: Array<{ id: string; state: string }> };
    for (const v of onVictim) expect(listed.items.find((t) => t.id === v.id), v.id).toBeUndefined();
    await new Promise((r) => setTimeout(r, 500));
    expect(findPid(['/bin/sleep', '2']), 'a sleep of a k- job run again by the restarted node-c').toBeUndefined();
  });
});

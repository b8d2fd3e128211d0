/**
 * The fleet's Redis connection settings against real redis-servers: TLS (a self-signed CA given
 * as `tls.caFile`) with a password carries jobs; a wrong password, an unknown CA or a closed port
 * fail with a typed `ERR_FLEET_REDIS` naming the cause instead of hanging. And a task's time
 * limit holds across nodes: a job run again after its node was SIGKILLed gets what was left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetProducer, FleetWorker, type FleetWorkerOptions } from '../../lib/fleet/index.js';
import { ProcessExecutor } from '../../lib/process/executor.js';
import { TaskQueue } from '../../lib/task/queue.js';
import { tsx } from '../agent/cli-run.js';
import { startRedis, type RedisServer } from './redis.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'st-fleet-conn-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function node(url: string, redis: FleetWorkerOptions['redis'], name: string) {
  const queue = new TaskQueue({ concurrency: 2, dataDir: join(dir, name) });
  queue.registerExecutor('process', new ProcessExecutor());
  return { queue, worker: new FleetWorker(queue, { redis, prefix: 'conn' }, { name, url }) };
}

describe('Redis over TLS with a password', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ tls: true, password: 'pw-0123456789' });
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('rediss:// with the CA file and the password: a job runs', async () => {
    const o = { redis: { url: redis.url, password: 'pw-0123456789', tls: { caFile: redis.caFile! } }, prefix: 'conn' };
    const producer = await FleetProducer.connect(o);
    const n = node('http://tls-node.invalid', o.redis, 'tls-node');
    await n.worker.start();
    try {
      const rec = await (await producer.submit({ id: 'over-tls', kind: 'process', spec: { command: '/bin/true' } })).done;
      expect(rec.state).toBe('succeeded');
      expect((rec.info.fleet as { node: string }).node).toBe('tls-node');
    } finally {
      await n.worker.close();
      await n.queue.close();
      await producer.close();
    }
  });

  it('a wrong password, an unknown CA: ERR_FLEET_REDIS with the cause, no hang', async () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['wrong password', { url: redis.url, password: 'nope-nope-nope', tls: { caFile: redis.caFile! } }, /WRONGPASS|invalid username-password|NOAUTH/i],
      ['unknown CA', { url: redis.url, password: 'pw-0123456789' }, /certificate/i],
    ];
    for (const [what, r, cause] of cases) {
      const t0 = Date.now();
      const err = await FleetProducer.connect({ redis: { ...r, connectTimeoutMs: 1500 } as never }).catch((e: unknown) => e);
      expect(err, what).toMatchObject({ code: 'ERR_FLEET_REDIS' });
      expect((err as Error).message, what).toMatch(cause);
      expect(Date.now() - t0, what).toBeLessThan(10_000);
      const n = node('http://x.invalid', { ...r, connectTimeoutMs: 1500 } as FleetWorkerOptions['redis'], `bad-${what.replace(/\W/g, '')}`);
      await expect(n.worker.start(), what).rejects.toMatchObject({ code: 'ERR_FLEET_REDIS' });
      await n.worker.close();
      await n.queue.close();
    }
  });
});

it('nothing listening: ERR_FLEET_REDIS naming the refused connection', async () => {
  const err = await FleetProducer.connect({ redis: { url: 'redis://127.0.0.1:1', connectTimeoutMs: 1000 } }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'ERR_FLEET_REDIS' });
  expect((err as Error).message).toMatch(/ECONNREFUSED/);
});

describe('time limits across nodes', () => {
  let redis: RedisServer;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await redis?.close();
  });

  it('a job whose node is SIGKILLed runs again with what is left of its timeout, and ends timed_out', async () => {
    const prefix = 'tmo';
    // Node A: its own process, the only one with zone=a at first; short locks so its death shows soon.
    child = spawn(process.execPath, ['--import', tsx, join(import.meta.dirname, 'node-proc.ts'), redis.url, prefix, join(dir, 'node-a'), 'node-a', '2000', '1000', '{"zone":"a"}'], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe('ready');
    const producer = new FleetProducer({ redis: { url: redis.url }, prefix, pollMs: 100 });
    const h = await producer.submit({ id: 'budget-1', kind: 'process', spec: { command: '/bin/sleep', args: ['30'] }, timeoutMs: 4000 });
    for (let i = 0; i < 100 && (await producer.get('budget-1'))?.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await producer.get('budget-1'))?.state).toBe('running');
    // Node B (here) takes over after A dies.
    const queueB = new TaskQueue({ concurrency: 2, dataDir: join(dir, 'node-b') });
    queueB.registerExecutor('process', new ProcessExecutor());
    const workerB = new FleetWorker(queueB, { redis: { url: redis.url }, prefix, lockDurationMs: 2000, stalledIntervalMs: 1000 }, { name: 'node-b' });
    await workerB.start();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      process.kill(-child.pid!, 'SIGKILL');
      const rec = await h.done;
      expect(rec.state).toBe('timed_out');
      const f = rec.info.fleet as { node: string; run: number };
      expect(f.node).toBe('node-b');
      expect(f.run).toBeGreaterThan(1);
      // Node B ran it with what was left of the 4 s (or found none left), not 4 s afresh.
      const local = queueB.get('budget-1');
      if (local) expect(local.timeoutMs!).toBeLessThan(4000);
      else expect(rec.error?.message).toMatch(/across nodes/);
    } finally {
      await workerB.close();
      await queueB.close();
      await producer.close();
    }
  });
});

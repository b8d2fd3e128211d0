import { statfsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freemem, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { TaskQueue } from 'smoothtask/task';
import { AlertEngine } from 'smoothtask/notify';
import { alertEngineCheck, createNodeStatus, createStatusHandler, getNodeStatus, gpuInfoFromNvml, NodeStatusSchema, parseMeminfo } from 'smoothtask/status';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(handler: Parameters<typeof createServer>[1]) {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('node status', () => {
  it('memory, disks and CPU agree with os and statfs', async () => {
    const s = await getNodeStatus({ mounts: ['/', '/tmp'] });
    expect(NodeStatusSchema.parse(s)).toEqual(s);
    // os.totalmem() reads MemTotal too: exact
    expect(s.memory.totalBytes).toBe(totalmem());
    // os.freemem() reads MemAvailable: equal up to what changed between the two reads
    expect(Math.abs(s.memory.availableBytes - freemem()) / totalmem()).toBeLessThan(0.05);
    expect(s.memory.availableRatio).toBeCloseTo(s.memory.availableBytes / s.memory.totalBytes, 12);
    for (const d of s.disks) {
      const f = statfsSync(d.path);
      expect(d.totalBytes).toBe(f.blocks * f.bsize);
      expect(Math.abs(d.availableBytes - f.bavail * f.bsize)).toBeLessThan(256 * 1024 * 1024);
      expect(d.freeBytes).toBeGreaterThanOrEqual(d.availableBytes);
    }
    expect(s.cpu.cores).toBeGreaterThan(0);
    expect(s.cpu.utilisation).toBeGreaterThanOrEqual(0);
    expect(s.cpu.utilisation).toBeLessThanOrEqual(1);
    expect(s.cpu.load.one).toBeGreaterThanOrEqual(0);
    expect(s.tasks).toBeNull();
    expect(s.gpus).toBeNull();
  });

  it('parses meminfo', () => {
    expect(parseMeminfo('MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 50 kB\n')).toEqual({ totalBytes: 102400, freeBytes: 10240, availableBytes: 51200 });
    expect(parseMeminfo('MemTotal: 100 kB\nMemFree: 10 kB\nCached: 5 kB\nBuffers: 1 kB\n').availableBytes).toBe(16 * 1024);
  });

  it('counts tasks of a real TaskQueue by state and lists the running ones', async () => {
    const queue = new TaskQueue({ concurrency: 2 });
    cleanups.push(() => queue.close());
    const release: Array<() => void> = [];
    queue.registerExecutor('hold', {
      run: (ctx) =>
        new Promise((resolve) => {
          const done = () => resolve({ exitCode: 0 });
          release.push(done);
          ctx.signal.addEventListener('abort', done, { once: true });
        }),
    });
    queue.registerExecutor('fail', { run: async () => ({ exitCode: 3 }) });
    await queue.submit({ kind: 'fail' }).done;
    const held = [1, 2, 3].map((i) => queue.submit({ kind: 'hold', labels: { n: String(i) } }));
    for (let i = 0; i < 100 && release.length < 2; i++) await sleep(10);
    const provider = createNodeStatus({ tasks: queue, cpuSampleMs: 0 });
    const s = await provider.get();
    expect(s.tasks!.total).toBe(4);
    expect(s.tasks!.byState.running).toBe(2);
    expect(s.tasks!.byState.queued).toBe(1);
    expect(s.tasks!.byState.failed).toBe(1);
    expect(s.tasks!.byState.succeeded).toBe(0);
    expect(s.tasks!.running.map((t) => t.id).sort()).toEqual(held.slice(0, 2).map((h) => h.id).sort());
    expect(s.tasks!.running[0]!.kind).toBe('hold');
    expect(s.tasks!.running[0]!.runningForMs).toBeGreaterThanOrEqual(0);
    for (const r of release) r();
    await held[0]!.done;
    await held[1]!.done;
    for (let i = 0; i < 100 && release.length < 3; i++) await sleep(10);
    release[2]!();
    await held[2]!.done;
    const after = await provider.get();
    expect(after.tasks!.byState.succeeded).toBe(3);
    expect(after.tasks!.running).toEqual([]);
  });

  it('health: thresholds, failing mounts, GPU provider, checks, alert engine', async () => {
    const gpus = [{ index: 0, name: 'stub', memoryTotalBytes: 8e9, memoryFreeBytes: 6e9 }];
    const ok = await getNodeStatus({ gpus: () => gpus, cpuSampleMs: 0, memory: { degraded: 0, unhealthy: 0 }, disk: { degraded: 0, unhealthy: 0 } });
    expect(ok.health).toEqual({ status: 'ok', reasons: [] });
    expect(ok.gpus).toEqual(gpus);
    const d = await getNodeStatus({ mounts: ['/', '/does/not/exist'], memory: { degraded: 1, unhealthy: 0 }, cpuSampleMs: 0 });
    expect(d.health.status).toBe('degraded');
    expect(d.health.reasons.some((r) => r.startsWith('memory:'))).toBe(true);
    expect(d.health.reasons.some((r) => r.includes('/does/not/exist'))).toBe(true);
    const u = await getNodeStatus({ checks: [() => ({ status: 'unhealthy', reason: 'db down' })], gpus: () => Promise.reject(new Error('nvml gone')), cpuSampleMs: 0 });
    expect(u.health.status).toBe('unhealthy');
    expect(u.health.reasons).toContain('db down');
    expect(u.health.reasons).toContain('gpus: nvml gone');

    const engine = new AlertEngine({ rules: [{ name: 'Crit', expr: { fn: () => true }, labels: { severity: 'critical' } }], now: () => 0 });
    engine.addSource('broken', { read: () => Promise.reject(new Error('no bpf')) });
    await engine.evaluate(0);
    const e = await getNodeStatus({ checks: [alertEngineCheck(engine)], cpuSampleMs: 0, memory: { degraded: 0, unhealthy: 0 }, disk: { degraded: 0, unhealthy: 0 } });
    expect(e.health.status).toBe('degraded');
    expect(e.health.reasons).toEqual(['metrics source broken: no bpf', 'alert Crit firing']);
    await engine.close();
  });

  it('maps NVML samples to GPU entries (no GPU here: a sample shaped like sampleNvml()\'s)', async () => {
    const sample = {
      devices: [
        { index: 0, name: 'A100', memoryTotalBytes: 40e9, memoryFreeBytes: 30e9, utilizationGpuPercent: 55 },
        { index: 1, name: 'old', memoryTotalBytes: null, memoryFreeBytes: null, utilizationGpuPercent: null },
      ],
    };
    const s = await getNodeStatus({ gpus: () => gpuInfoFromNvml(sample), cpuSampleMs: 0 });
    expect(s.gpus).toEqual([
      { index: 0, name: 'A100', memoryTotalBytes: 40e9, memoryFreeBytes: 30e9, utilisation: 0.55 },
      { index: 1, name: 'old' },
    ]);
    expect(gpuInfoFromNvml({ devices: [] })).toEqual([]);
  });

  it('HTTP handler serves JSON on loopback, 503 when unhealthy (configurable), 405 otherwise', async () => {
    let level: 'ok' | 'degraded' | 'unhealthy' = 'ok';
    const provider = createNodeStatus({ checks: [() => ({ status: level, reason: `forced ${level}` })], cpuSampleMs: 10, memory: { degraded: 0, unhealthy: 0 }, disk: { degraded: 0, unhealthy: 0 } });
    const base = await serve(createStatusHandler(provider));
    const strict = await serve(createStatusHandler(provider, { failOn: 'degraded', unhealthyStatus: 500 }));
    let r = await fetch(`${base}/status`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/json');
    const body = NodeStatusSchema.parse(await r.json());
    expect(body.memory.totalBytes).toBe(totalmem());
    level = 'degraded';
    expect((await fetch(base)).status).toBe(200);
    expect((await fetch(strict)).status).toBe(500);
    level = 'unhealthy';
    r = await fetch(base);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { health: unknown }).health).toEqual({ status: 'unhealthy', reasons: ['forced unhealthy'] });
    r = await fetch(base, { method: 'HEAD' });
    expect(r.status).toBe(503);
    expect(await r.text()).toBe('');
    r = await fetch(base, { method: 'POST' });
    expect(r.status).toBe(405);
    // a provider that fails answers 500 with the message
    const broken = await serve(createStatusHandler({ get: () => Promise.reject(new Error('boom')) }));
    r = await fetch(broken);
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ error: 'boom' });
  });
});

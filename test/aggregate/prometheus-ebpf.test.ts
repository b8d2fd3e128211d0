// The Prometheus export of a real eBPF reader: the cpu family's run-queue latency log2
// histogram (sched.bpf.c) becomes a Prometheus histogram with power-of-two `le` bounds.
// Needs the addon and BPF objects and root; skipped with a message otherwise.
import { describe, expect, it, afterAll } from 'vitest';
import { Registry } from 'prom-client';
import { registerReader } from 'smoothtask/aggregate';
import { openCpuReader } from '../../lib/metrics/builtin.js';

const reader = await openCpuReader({ filter: { tgids: [process.pid] } }).catch((e: unknown) => {
  console.warn(`eBPF cpu reader unavailable, skipping: ${(e as Error).message}`);
  return undefined;
});
afterAll(() => reader?.close());

describe.skipIf(!reader)('Prometheus export of an eBPF reader', () => {
  it('run-queue latency histogram: cumulative buckets at 2^(i+1), +Inf = count = the slots\' sum', async () => {
    // make this process wait on run queues a bit: many short timers
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    const registry = new Registry();
    await registerReader(registry, reader!, { types: { 'cpu.processes.cpuNs': 'counter' }, cacheMs: 60_000 });
    const text = await registry.metrics();
    expect(text).toContain('# TYPE smoothtask_cpu_runq_latency histogram');
    const buckets = [...text.matchAll(/^smoothtask_cpu_runq_latency_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((m) => ({ le: m[1]!, n: Number(m[2]) }));
    const count = Number(/^smoothtask_cpu_runq_latency_count (\d+)$/m.exec(text)?.[1]);
    expect(buckets.length).toBeGreaterThan(1);
    expect(count).toBeGreaterThan(0);
    buckets.forEach((b, i) => {
      if (i > 0) expect(b.n).toBeGreaterThanOrEqual(buckets[i - 1]!.n);
      if (b.le !== '+Inf') expect(Number(b.le)).toBe(2 ** (i + 1));
    });
    expect(buckets.at(-1)).toEqual({ le: '+Inf', n: count });
    const mine = new RegExp(`^smoothtask_cpu_processes_cpu_ns_total\\{tgid="${process.pid}",comm="[^"]*"\\} (\\d+)`, 'm').exec(text);
    expect(Number(mine?.[1])).toBeGreaterThan(0);
  });
});

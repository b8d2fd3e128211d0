import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BUILTIN_COUNTERS, createMetricsHandler, flattenSnapshot, histogramOf, promName, registerReader } from 'smoothtask/aggregate';
import { ProcfsCpuReader } from '../../lib/metrics/procfs-readers.js';

/** Parses Prometheus text exposition format back into series (a strict little parser). */
function parseProm(text: string) {
  const types = new Map<string, string>();
  const series: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) for (const p of m[3].matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]!] = p[2]!;
    const v = m[4]!;
    series.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : Number(v) });
  }
  return { types, series };
}

describe('Prometheus export', () => {
  // A synthetic reader shaped like the metrics readers (family/backend/timestamp + rows + histogram).
  let reads = 0;
  const latencies = [3, 5, 9, 200, 1000, 1000, 70_000];
  const reader = {
    read: async () => {
      reads++;
      return {
        family: 'cpu',
        backend: 'procfs',
        timestamp: Date.now(),
        utilisation: 0.25,
        contextSwitchesTotal: 1234,
        runqLatencyHist: histogramOf(latencies),
        processes: [
          { pid: 1, comm: 'init', cpuTimeNs: 5_000_000n, threads: 1 },
          { pid: 42, comm: 'node "x"', cpuTimeNs: 7_000_000n, threads: 11 },
        ],
      };
    },
  };

  it('flattens snapshots into labelled samples', async () => {
    const s = flattenSnapshot(await reader.read());
    const names = s.map((x) => `${x.kind}:${x.name}${JSON.stringify(x.labels)}`);
    expect(names).toContain('scalar:cpu.utilisation{}');
    expect(names).toContain('histogram:cpu.runqLatencyHist{}');
    expect(names).toContain('scalar:cpu.processes.cpuTimeNs{"pid":"42","comm":"node \\"x\\""}');
    expect(promName('smoothtask', 'cpu.processes.cpuTimeNs')).toBe('smoothtask_cpu_processes_cpu_time_ns');
  });

  it('registers gauges, counters and log2 histograms; text output parses back to the inputs', async () => {
    const registry = new Registry();
    reads = 0;
    const b = await registerReader(registry, reader, { types: { 'cpu.processes.cpuTimeNs': 'counter' }, constLabels: { node: 'n1' } });
    const text = await registry.metrics();
    expect(reads).toBe(1); // one snapshot served the discovery and the scrape (cache)
    const { types, series } = parseProm(text);
    expect(types.get('smoothtask_cpu_utilisation')).toBe('gauge');
    expect(types.get('smoothtask_cpu_context_switches_total')).toBe('counter');
    expect(types.get('smoothtask_cpu_processes_cpu_time_ns_total')).toBe('counter');
    expect(types.get('smoothtask_cpu_runq_latency_hist')).toBe('histogram');
    const get = (name: string, labels: Record<string, string> = {}) =>
      series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    expect(get('smoothtask_cpu_utilisation')[0]!.value).toBe(0.25);
    expect(get('smoothtask_cpu_utilisation')[0]!.labels.node).toBe('n1');
    expect(get('smoothtask_cpu_processes_cpu_time_ns_total', { pid: '42' })[0]!.value).toBe(7_000_000);
    expect(get('smoothtask_cpu_processes_cpu_time_ns_total', { pid: '42' })[0]!.labels.comm).toBe('node \\"x\\"');
    expect(get('smoothtask_cpu_processes_threads', { pid: '1' })[0]!.value).toBe(1);
    // histogram: le = 2^(i+1); cumulative counts equal the number of latencies below each bound
    const buckets = get('smoothtask_cpu_runq_latency_hist_bucket');
    expect(buckets.length).toBe(histogramOf(latencies).length + 1);
    for (const bk of buckets) {
      const le = bk.labels.le === '+Inf' ? Infinity : Number(bk.labels.le);
      expect(bk.value).toBe(latencies.filter((v) => v < le).length);
      if (le !== Infinity) expect(Math.log2(le) % 1).toBe(0);
    }
    expect(get('smoothtask_cpu_runq_latency_hist_count')[0]!.value).toBe(latencies.length);
    const sum = get('smoothtask_cpu_runq_latency_hist_sum')[0]!.value;
    const exact = latencies.reduce((a, v) => a + v, 0);
    expect(sum / exact).toBeGreaterThan(0.5);
    expect(sum / exact).toBeLessThan(2);

    // values follow the reader on later scrapes; unregister removes everything
    await new Promise((r) => setTimeout(r, 600));
    await registry.metrics();
    expect(reads).toBe(2);
    expect(b.metricNames.length).toBe(5);
    b.unregister();
    expect(await registry.metrics()).toBe('\n');
  });

  it('without options, the built-in families\' cumulative fields are counters (real procfs readers), gauges stay gauges', async () => {
    const { ProcfsProcessReader } = await import('../../lib/metrics/procfs-readers.js');
    const filter = { tgids: [process.pid], cgroupIds: [], cgroupLevels: [] };
    const registry = new Registry();
    const cpu = new ProcfsCpuReader(filter);
    const proc = new ProcfsProcessReader(filter);
    await registerReader(registry, cpu, { cacheMs: 0 });
    await registerReader(registry, proc, { cacheMs: 0 });
    const { types } = parseProm(await registry.metrics());
    for (const name of ['smoothtask_cpu_processes_cpu_ns_total', 'smoothtask_cpu_processes_voluntary_total', 'smoothtask_process_processes_cpu_ns_total', 'smoothtask_process_processes_minor_faults_total']) {
      expect(types.get(name), name).toBe('counter');
    }
    for (const name of ['smoothtask_process_processes_rss_bytes', 'smoothtask_process_processes_threads']) expect(types.get(name), name).toBe('gauge');
    // every name in the list is a real field of a built-in snapshot schema
    const schemas = await import('../../lib/metrics/schemas.js');
    const shapes: Record<string, Record<string, { shape: Record<string, unknown> }>> = {
      cpu: { processes: schemas.CpuProcessSchema, threads: schemas.CpuThreadSchema },
      process: { processes: schemas.ProcessInfoSchema },
      network: { connections: schemas.TcpConnectionSchema },
      disk: { devices: schemas.DiskDeviceSchema, processes: schemas.DiskProcessSchema },
      syscalls: { syscalls: schemas.SyscallStatSchema },
    };
    for (const n of BUILTIN_COUNTERS) {
      const [family, array, field] = n.split('.') as [string, string, string];
      if (n === 'cpu.cgroups.cpuNs') continue;
      expect(shapes[family]?.[array]?.shape, n).toHaveProperty(field);
    }
  });

  it('exports the real procfs CPU reader over HTTP; this process\'s CPU time matches process.cpuUsage()', async () => {
    const registry = new Registry();
    const reader = new ProcfsCpuReader({ tgids: [process.pid], cgroupIds: [], cgroupLevels: [] });
    await registerReader(registry, reader, { types: { 'cpu.processes.cpuNs': 'counter' }, cacheMs: 0 });
    const server = createServer(createMetricsHandler(registry));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const spinStart = Date.now();
      while (Date.now() - spinStart < 50); // some CPU time of our own
      const before = process.cpuUsage();
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
      const after = process.cpuUsage();
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const { types, series } = parseProm(await res.text());
      expect(types.get('smoothtask_cpu_processes_cpu_ns_total')).toBe('counter');
      const mine = series.find((s) => s.name === 'smoothtask_cpu_processes_cpu_ns_total' && s.labels.tgid === String(process.pid));
      expect(mine).toBeDefined();
      // procfs counts in 10 ms ticks: within a tick (+ rounding) of what Node reports
      const lo = (before.user + before.system) * 1000 - 20e6;
      const hi = (after.user + after.system) * 1000 + 20e6;
      expect(mine!.value).toBeGreaterThan(lo);
      expect(mine!.value).toBeLessThan(hi);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      reader.close();
    }
  });
});

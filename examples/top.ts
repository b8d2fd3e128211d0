/**
 * A live, top-like view of every metric family, refreshed each second.
 *
 *   node --import tsx examples/top.ts [--pid N]... [--container ID]... [--cgroup PATH]... [--backend procfs]
 *
 * eBPF needs root (CAP_BPF + CAP_PERFMON); without it, or without the addon built, families
 * fall back to procfs where they have a procfs backend. Exits after SMOOTHTASK_EXAMPLE_SECONDS
 * seconds when that is set, else on Ctrl-C.
 */
import { parseArgs } from 'node:util';
import {
  createMonitor,
  type CpuSnapshot,
  type DiskSnapshot,
  type Filter,
  type NetworkSnapshot,
  type ProcessEvent,
  type ProcessSnapshot,
  type SyscallsSnapshot,
} from 'smoothtask/metrics';

const { values } = parseArgs({
  options: {
    pid: { type: 'string', multiple: true },
    container: { type: 'string', multiple: true },
    cgroup: { type: 'string', multiple: true },
    backend: { type: 'string' },
    families: { type: 'string' },
  },
});

const filter: Filter = {
  ...(values.pid?.length ? { tgids: values.pid.map(Number) } : {}),
  ...(values.container?.length ? { containers: values.container } : {}),
  ...(values.cgroup?.length ? { cgroupPaths: values.cgroup } : {}),
};
const seconds = Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 0);

const monitor = await createMonitor({
  filter,
  events: true,
  ...(values.families ? { families: values.families.split(',') } : {}),
  ...(values.backend ? { backend: values.backend as 'procfs' } : {}),
});

// Process lifecycle events since the last refresh (eBPF backend only).
const recent: ProcessEvent[] = [];
const ac = new AbortController();
void (async () => {
  for await (const { family, event } of monitor.events({ signal: ac.signal })) {
    if (family === 'process') {
      recent.push(event as ProcessEvent);
      if (recent.length > 200) recent.shift();
    }
  }
})().catch(() => {});

const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
const pad = (s: string | number, n: number): string => String(s).slice(0, n).padEnd(n);
const top = <T>(xs: T[], key: (x: T) => number, n = 5): T[] => [...xs].sort((a, b) => key(b) - key(a)).slice(0, n);

let prev: { cpu?: CpuSnapshot; syscalls?: SyscallsSnapshot; disk?: DiskSnapshot; at: number } = { at: performance.now() };

function render(s: Awaited<ReturnType<typeof monitor.read>>['snapshots'], errors: Record<string, Error>): string {
  const now = performance.now();
  const dt = (now - prev.at) / 1000;
  const lines: string[] = [];
  lines.push(`smoothtask top — ${new Date().toISOString()}  filter ${JSON.stringify(filter)}  map memory ${mib(monitor.memoryBytes())}`);
  lines.push(`families: ${[...monitor.readers].map(([n, r]) => `${n}(${r.backend})`).join(' ')}${monitor.failures.size ? `  unavailable: ${[...monitor.failures.keys()].join(', ')}` : ''}`);

  const cpu = s.cpu;
  if (cpu) {
    const before = new Map(prev.cpu?.processes.map((p) => [p.tgid, p.cpuNs]));
    const rows = cpu.processes.map((p) => ({ p, pct: prev.cpu && before.has(p.tgid) ? ((p.cpuNs - before.get(p.tgid)!) / 1e9 / dt) * 100 : 0 }));
    lines.push('', `CPU (${cpu.backend})        PID   %CPU   vol/invol switches`);
    for (const { p, pct } of top(rows, (r) => r.pct)) lines.push(`  ${pad(p.comm, 16)} ${pad(p.tgid, 7)} ${pct.toFixed(1).padStart(5)}   ${p.voluntary}/${p.involuntary}`);
    const slots = cpu.runqLatency?.slots ?? [];
    const total = slots.reduce((a, b) => a + b, 0);
    if (total) {
      let acc = 0;
      const p99 = slots.findIndex((c) => (acc += c) >= total * 0.99);
      lines.push(`  run-queue latency: ${total} waits, p99 < ${2 ** (p99 + 1)} µs`);
    }
  }
  const proc = s.process as ProcessSnapshot | undefined;
  if (proc) {
    lines.push('', `PROCESSES (${proc.backend}): ${proc.processes.length}   top RSS`);
    for (const p of top(proc.processes, (x) => x.rssBytes, 3)) lines.push(`  ${pad(p.comm, 16)} ${pad(p.tgid, 7)} ${mib(p.rssBytes)}  threads ${p.threads}`);
    const ex = recent.splice(0);
    if (ex.length) lines.push(`  events: ${ex.filter((e) => e.type === 'exec').length} exec, ${ex.filter((e) => e.type === 'exit').length} exit; last: ${ex.slice(-3).map((e) => `${e.type} ${e.comm}(${e.tgid})`).join(', ')}`);
  }
  const net = s.network as NetworkSnapshot | undefined;
  if (net) {
    lines.push('', `TCP (${net.backend}): ${net.connections.length} connections`);
    for (const c of top(net.connections, (x) => (x.bytesSent ?? 0) + (x.bytesReceived ?? 0), 3))
      lines.push(`  ${pad(c.comm ?? '?', 12)} ${c.localAddress}:${c.localPort} -> ${c.remoteAddress}:${c.remotePort} ${c.state} tx ${c.bytesSent ?? '-'} rx ${c.bytesReceived ?? '-'}`);
  }
  const disk = s.disk as DiskSnapshot | undefined;
  if (disk) {
    const before = new Map(prev.disk?.devices.map((d) => [d.dev, d]));
    lines.push('', `DISK (${disk.backend})`);
    for (const d of disk.devices.filter((x) => x.readOps + x.writeOps > 0).slice(0, 4)) {
      const b = before.get(d.dev);
      const rate = (n: number, o: number | undefined): string => (o === undefined ? '-' : `${((n - o) / dt / 1024).toFixed(0)} KiB/s`);
      lines.push(`  ${pad(d.name || d.dev, 8)} read ${rate(d.readBytes, b?.readBytes)} write ${rate(d.writeBytes, b?.writeBytes)}`);
    }
  }
  const sys = s.syscalls as SyscallsSnapshot | undefined;
  if (sys) {
    const before = new Map(prev.syscalls?.syscalls.map((x) => [`${x.tgid}/${x.nr}`, x.count]));
    const rows = sys.syscalls.map((x) => ({ x, d: x.count - (before.get(`${x.tgid}/${x.nr}`) ?? x.count) }));
    lines.push('', 'SYSCALLS /s');
    for (const { x, d } of top(rows, (r) => r.d, 5)) lines.push(`  ${pad(x.name, 16)} pid ${pad(x.tgid, 7)} ${(d / dt).toFixed(0)}/s  avg ${x.count ? (x.totalNs / x.count / 1000).toFixed(1) : '-'} µs`);
  }
  for (const [name, snap] of Object.entries(s)) {
    if (!snap || ['cpu', 'process', 'network', 'disk', 'syscalls'].includes(name)) continue;
    lines.push('', `${name.toUpperCase()} (${snap.backend}): ${JSON.stringify(snap).slice(0, 160)}`);
  }
  for (const [name, e] of Object.entries(errors)) lines.push(`! ${name}: ${e.message}`);
  prev = { ...(cpu ? { cpu } : {}), ...(sys ? { syscalls: sys } : {}), ...(disk ? { disk } : {}), at: now };
  return lines.join('\n');
}

const started = Date.now();
const tick = async (): Promise<void> => {
  const { snapshots, errors } = await monitor.read();
  const out = render(snapshots, errors);
  if (process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
  console.log(out);
};

await tick();
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    if (seconds > 0 && Date.now() - started >= seconds * 1000) {
      clearInterval(timer);
      resolve();
      return;
    }
    void tick();
  }, 1000);
  process.once('SIGINT', () => {
    clearInterval(timer);
    resolve();
  });
});
ac.abort();
monitor.close();

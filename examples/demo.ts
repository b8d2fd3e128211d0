/**
 * The live demo behind `npm run demo`: loads the bundled eBPF programs in parallel, makes a
 * little activity of its own (short processes, loopback TCP traffic, a CPU burner, file I/O)
 * and prints what the kernel saw, once a second, for a few seconds.
 *
 *   npm run demo                 # 10 s
 *   npm run demo -- --seconds 30
 */
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMonitor, type MonitorEvent } from 'smoothtask/metrics';

const argSeconds = process.argv.indexOf('--seconds');
const seconds = Number(argSeconds > 0 ? process.argv[argSeconds + 1] : process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 10);

const t0 = performance.now();
// Every family's object loads in parallel; a family that cannot use eBPF here falls back.
using monitor = await createMonitor({
  families: ['cpu', 'process', 'network', 'disk', 'syscalls'],
  events: true,
});
console.log(`opened ${monitor.readers.size} families in ${(performance.now() - t0).toFixed(0)} ms:`);
for (const [name, r] of monitor.readers) console.log(`  ${name.padEnd(9)} backend=${r.backend} maps=${(r.memoryBytes() / 1024).toFixed(0)} KiB`);
for (const [name, e] of monitor.failures) console.log(`  ${name.padEnd(9)} unavailable: ${e.message}`);
console.log(`map memory in all: ${(monitor.memoryBytes() / 1024 / 1024).toFixed(2)} MiB\n`);

// Events (exec/exit, TCP lifecycle) arrive through ring buffers; count them as they come.
const ac = new AbortController();
const eventCounts = new Map<string, number>();
const recent: string[] = [];
const pump = (async () => {
  for await (const e of monitor.events({ signal: ac.signal })) note(e);
})();
function note(e: MonitorEvent): void {
  const ev = e.event as { type?: string; comm?: string; exitCode?: number | null; filename?: string };
  const key = `${e.family}:${ev.type ?? '?'}`;
  eventCounts.set(key, (eventCounts.get(key) ?? 0) + 1);
  if (e.family === 'process' && ev.type === 'exit') recent.push(`${ev.comm} exited ${ev.exitCode ?? 'by signal'}`);
  if (recent.length > 4) recent.shift();
}

// Our own activity, so there is something to see on an idle machine.
const dir = mkdtempSync(join(tmpdir(), 'smoothtask-demo-'));
const server = createServer((s) => s.on('data', (d) => s.write(d))).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const port = (server.address() as { port: number }).port;
const burner = spawn(process.execPath, ['-e', 'const e=Date.now()+864e5; while(Date.now()<e);'], { stdio: 'ignore' });
let tick = 0;
const activity = setInterval(() => {
  tick++;
  spawn('sh', ['-c', `exit ${tick % 3}`], { stdio: 'ignore' });
  const c = connect(port, '127.0.0.1', () => c.end(Buffer.alloc(4096 * tick)));
  c.on('data', () => {}).on('error', () => {});
  writeFileSync(join(dir, `f${tick % 4}`), Buffer.alloc(1 << 20));
}, 250);

const lastCpu = new Map<number, number>();
for (const p of (await monitor.read()).snapshots.cpu?.processes ?? []) lastCpu.set(p.tgid, p.cpuNs);
console.log(`burner pid ${burner.pid}, demo server on 127.0.0.1:${port}`);
try {
  for (let s = 1; s <= seconds; s++) {
    await sleep(1000);
    const { snapshots } = await monitor.read();
    console.log(`--- t=${s}s`);
    const cpu = snapshots.cpu;
    if (cpu) {
      // Counters are cumulative: the busiest processes are the ones whose CPU time grew most.
      const used = cpu.processes.map((p) => ({ p, delta: p.cpuNs - (lastCpu.get(p.tgid) ?? p.cpuNs) }));
      for (const p of cpu.processes) lastCpu.set(p.tgid, p.cpuNs);
      const top = used.sort((a, b) => b.delta - a.delta).slice(0, 3);
      console.log(`cpu[${cpu.backend}]   busiest this second: ${top.map(({ p, delta }) => `${p.comm || p.tgid}(${p.tgid}) ${(delta / 1e6).toFixed(0)}ms`).join(', ')}`);
      if (cpu.runqLatency) {
        const total = cpu.runqLatency.slots.reduce((a, b) => a + b, 0);
        console.log(`             run-queue waits: ${total} (log2 ${cpu.runqLatency.unit} histogram, ${cpu.runqLatency.slots.length} slots)`);
      }
    }
    const proc = snapshots.process;
    if (proc) console.log(`process[${proc.backend}] ${proc.processes.length} processes; recent exits: ${recent.join('; ') || '-'}`);
    const net = snapshots.network;
    if (net) {
      const ours = net.connections.filter((c) => c.localPort === port || c.remotePort === port);
      const sent = ours.reduce((a, c) => a + (c.bytesSent ?? 0), 0);
      console.log(`network[${net.backend}] ${net.connections.length} TCP connections (${ours.length} to the demo server, ${sent} bytes sent)`);
    }
    const disk = snapshots.disk;
    if (disk) {
      const d = disk.devices.map((x) => `${x.name} r=${x.readOps} w=${x.writeOps} (${(x.writeBytes / 1048576).toFixed(1)} MiB written)`);
      console.log(`disk[${disk.backend}]    ${d.slice(0, 3).join(', ') || 'no block I/O yet'}`);
    }
    const sys = snapshots.syscalls;
    if (sys) {
      const byName = new Map<string, number>();
      for (const x of sys.syscalls) byName.set(x.name, (byName.get(x.name) ?? 0) + x.count);
      const top = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 4);
      console.log(`syscalls[${sys.backend}] top: ${top.map(([n, c]) => `${n}=${c}`).join(' ')}`);
    }
    console.log(`events so far: ${[...eventCounts].map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}`);
  }
} finally {
  clearInterval(activity);
  burner.kill('SIGKILL');
  server.close();
  ac.abort();
  await pump.catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
console.log('\ndemo done');

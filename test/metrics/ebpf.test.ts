// The eBPF backend against ground truth the test creates (real kernel, real programs):
// CPU time and switches of a child vs /proc, 200 short processes' exec/exit events, 100
// loopback TCP connections with exact byte counts, a direct-I/O write on the right disk,
// exact syscall counts with the filter switched at run time, and the map memory budget.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  createMonitor,
  openCpuReader,
  openDiskReader,
  openNetworkReader,
  openProcessReader,
  openSyscallsReader,
  type ProcessEvent,
} from '../../lib/metrics/index.js';
import { CpuSnapshotSchema, DiskSnapshotSchema, NetworkSnapshotSchema, ProcessEventSchema, ProcessSnapshotSchema, SyscallsSnapshotSchema } from '../../lib/metrics/schemas.js';
import { readCtxSwitches, readSchedstat, readStat } from '../../lib/metrics/procfs.js';
import { EbpfProcessReader } from '../../lib/metrics/process/ebpf.js';
import { BpfMap } from '../../lib/ebpf/map.js';
import { syscallNumber } from '../../lib/metrics/syscall-names.js';
import { cgroupPathOfPid, resolveContainer as resolveContainerRef, resolveFilter as resolve } from '../../lib/metrics/cgroup.js';
import { AlertEngine } from '../../lib/notify/index.js';
import { exitScript, fileDisk, kill, run, sleep, spawnBusy, spawnSleeper, tempDir, until } from './helpers.js';

const tmp = tempDir('st-metrics-ebpf-');
afterAll(() => tmp.cleanup());

describe('cpu (sched.bpf.c)', () => {
  it('busy child: on-CPU time within 5% of /proc/<pid>/stat over 2 s; switches match /proc/<pid>/status', async () => {
    const busy = spawnBusy();
    try {
      await sleep(50);
      const pid = busy.pid!;
      await using_(await openCpuReader({ filter: { tgids: [pid] } }), async (r) => {
        // /proc is read right before and after each map read: the map's counts must lie between.
        const ca1 = readCtxSwitches(pid)!;
        const ra1 = readSchedstat(pid, pid)!;
        const a = await r.read();
        const ra2 = readSchedstat(pid, pid)!;
        const sa = readStat(pid)!;
        const ca2 = readCtxSwitches(pid)!;
        await sleep(2000);
        const cb1 = readCtxSwitches(pid)!;
        const rb1 = readSchedstat(pid, pid)!;
        const b = await r.read();
        const rb2 = readSchedstat(pid, pid)!;
        const sb = readStat(pid)!;
        const cb2 = readCtxSwitches(pid)!;
        CpuSnapshotSchema.parse(b);
        expect(b.processes.map((p) => p.tgid)).toEqual([pid]);
        const cpu = (s: typeof a) => s.processes.find((p) => p.tgid === pid)?.cpuNs ?? 0;
        const ebpf = cpu(b) - cpu(a);
        const proc = sb.userNs + sb.systemNs - (sa.userNs + sa.systemNs);
        expect(proc).toBeGreaterThan(0.1e9);
        // schedstat has the kernel's nanosecond runtime: each reading lies between the
        // schedstat values read just before and just after it.
        expect(cpu(a)).toBeGreaterThanOrEqual(ra1.cpuNs);
        expect(cpu(a)).toBeLessThanOrEqual(ra2.cpuNs);
        expect(cpu(b)).toBeGreaterThanOrEqual(rb1.cpuNs);
        expect(cpu(b)).toBeLessThanOrEqual(rb2.cpuNs);
        // stat truncates utime and stime to 10 ms ticks separately: within 5%, plus up to two
        // ticks per reading at each end (40 ms), plus what the child ran between the reads.
        const lag = ra2.cpuNs - ra1.cpuNs + (rb2.cpuNs - rb1.cpuNs);
        expect(Math.abs(ebpf - proc), `ebpf ${ebpf} stat ${proc} lag ${lag}`).toBeLessThan(0.05 * proc + 40e6 + lag);
        const sw = (s: typeof a) => s.threads.find((t) => t.tid === pid)!;
        const dv = sw(b).voluntary - (sw(a)?.voluntary ?? 0);
        const di = sw(b).involuntary - (sw(a)?.involuntary ?? 0);
        expect(dv).toBeGreaterThanOrEqual(cb1.voluntary - ca2.voluntary);
        expect(dv).toBeLessThanOrEqual(cb2.voluntary - ca1.voluntary);
        expect(di).toBeGreaterThanOrEqual(cb1.involuntary - ca2.involuntary);
        expect(di).toBeLessThanOrEqual(cb2.involuntary - ca1.involuntary);
        expect(di).toBeGreaterThan(0);
        // Only the filtered process is in the maps.
        expect(new Set(b.threads.map((t) => t.tgid))).toEqual(new Set([pid]));
        expect(b.runqLatency!.slots.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
        expect(b.cgroups.length).toBeGreaterThan(0);
      });
    } finally {
      await kill(busy);
    }
  });
});

/** `using` for async tests without TS 5.2 emit concerns: closes the reader afterwards. */
async function using_<R extends { close(): void }>(r: R, fn: (r: R) => Promise<void>): Promise<void> {
  try {
    await fn(r);
  } finally {
    r.close();
  }
}

describe('cpu: records kept between reads', () => {
  it('a sleeping thread (and its process) keeps its record object between reads; a running one gets a new record, and the earlier snapshot keeps its numbers', async () => {
    const sleeper = spawnSleeper(30);
    const busy = spawnBusy();
    try {
      await sleep(100);
      await using_(await openCpuReader({ filter: { tgids: [sleeper.pid!, busy.pid!] } }), async (r) => {
        await sleep(100);
        const a = await r.read();
        const before = structuredClone(a.threads);
        const beforeProcs = structuredClone(a.processes);
        const at = (snap: typeof a, tid: number) => snap.threads.find((t) => t.tid === tid);
        // Until the busy child has run since `a` (on a loaded host it may get little CPU).
        let b = a;
        for (let i = 0; i < 50 && at(b, busy.pid!)!.cpuNs <= at(a, busy.pid!)!.cpuNs; i++) {
          await sleep(100);
          b = await r.read();
        }
        CpuSnapshotSchema.parse(b);
        expect(at(b, sleeper.pid!)).toBeDefined();
        expect(at(b, sleeper.pid!)).toBe(at(a, sleeper.pid!));
        expect(at(b, busy.pid!)).not.toBe(at(a, busy.pid!));
        expect(at(b, busy.pid!)!.cpuNs).toBeGreaterThan(at(a, busy.pid!)!.cpuNs);
        expect(a.threads).toEqual(before);
        // The same for the per-process sums: a process none of whose threads ran keeps its record.
        const proc = (snap: typeof a, tgid: number) => snap.processes.find((p) => p.tgid === tgid);
        expect(proc(b, sleeper.pid!)).toBeDefined();
        expect(proc(b, sleeper.pid!)).toBe(proc(a, sleeper.pid!));
        expect(proc(b, busy.pid!)).not.toBe(proc(a, busy.pid!));
        expect(proc(b, busy.pid!)!.cpuNs).toBeGreaterThan(proc(a, busy.pid!)!.cpuNs);
        expect(a.processes).toEqual(beforeProcs);
      });
    } finally {
      await kill(sleeper);
      await kill(busy);
    }
  });
});

describe('cpu through the process family\'s task iterator', () => {
  it('a monitor with cpu and process: the cpu family reads the iterator\'s pass and agrees with its own maps (sleeping: equal; running: between; exited threads counted once)', async () => {
    const sleeper = spawnSleeper(30);
    const busy = spawnBusy();
    // A process with a thread that burns CPU and exits (exited_cpu), then idles. The thread
    // starts once both readers watch (a line on stdin): the family counts the threads that exit
    // while it watches, so one gone before it opened would not be in either sum.
    const threaded = spawn(process.execPath, ['-e', "const { Worker } = require('node:worker_threads'); process.stdin.once('data', () => { const w = new Worker('const t = Date.now(); while (Date.now() - t < 150);', { eval: true }); w.on('exit', () => console.log('done')); }); setTimeout(() => {}, 60000);"], { stdio: ['pipe', 'pipe', 'ignore'] });
    const pass = vi.spyOn(EbpfProcessReader.prototype, 'recentPass');
    try {
      const filter = { tgids: [sleeper.pid!, busy.pid!, threaded.pid!] };
      const m = await createMonitor({ families: ['cpu', 'process'], filter, backend: 'ebpf', required: true });
      const own = await openCpuReader({ filter });
      try {
        await m.read();
        await own.read();
        const done = new Promise<void>((res) => threaded.stdout!.once('data', () => res()));
        threaded.stdin!.write('go\n');
        await done;
        await sleep(300); // the worker thread gone for good
        await m.read();
        await own.read();
        pass.mockClear();
        const a = await own.read();
        const b = (await m.read()).snapshots.cpu!;
        const c = await own.read();
        expect(pass).toHaveBeenCalled(); // the monitor's cpu family read the process family's pass
        CpuSnapshotSchema.parse(b);
        const proc = (s: typeof a, tgid: number) => s.processes.find((p) => p.tgid === tgid)!;
        const fields = ['cpuNs', 'voluntary', 'involuntary', 'runqNs', 'runqCount'] as const;
        // Sleeping: the counters at its last switch-out are the live counters.
        expect(proc(b, sleeper.pid!)).toEqual(proc(a, sleeper.pid!));
        expect(proc(b, sleeper.pid!).threads).toBe(1);
        for (const tgid of [busy.pid!, threaded.pid!]) {
          for (const f of fields) {
            expect(proc(b, tgid)[f], `${tgid} ${f}`).toBeGreaterThanOrEqual(proc(a, tgid)[f]!);
            expect(proc(b, tgid)[f], `${tgid} ${f}`).toBeLessThanOrEqual(proc(c, tgid)[f]!);
          }
          expect(proc(b, tgid).threads).toBe(proc(a, tgid).threads);
        }
        // The exited worker's ~150 ms is in the process's sum once (it ran; the process has fewer threads now).
        expect(proc(b, threaded.pid!).cpuNs).toBeGreaterThan(100e6);
        expect(proc(b, threaded.pid!).cpuNs).toBeLessThan(proc(c, threaded.pid!).cpuNs + 1);
        expect(new Set(b.threads.map((t) => t.tid))).toEqual(new Set(a.threads.map((t) => t.tid)));
        expect(b.cgroups.reduce((x, g) => x + g.cpuNs, 0)).toBeGreaterThan(0);
      } finally {
        own.close();
        m.close();
      }
    } finally {
      pass.mockRestore();
      await kill(sleeper);
      await kill(busy);
      await kill(threaded);
    }
  });
});

describe('process (proc.bpf.c)', () => {
  it('200 short processes: 200 exec and 200 exit events with the right exit codes, none lost', async () => {
    const name = 'st-exit-probe';
    const script = exitScript(tmp.dir, name);
    const r = await openProcessReader({ filter: { comm: name }, events: true });
    try {
      const events: ProcessEvent[] = [];
      const ac = new AbortController();
      const consumer = (async () => {
        for await (const e of r.events!({ signal: ac.signal })) events.push(e);
      })();
      const expected = new Map<number, number>();
      const N = 200;
      for (let i = 0; i < N; i += 20) {
        await Promise.all(
          Array.from({ length: Math.min(20, N - i) }, (_, j) => {
            const code = (i + j) % 256;
            return new Promise<void>((res, rej) => {
              const c = spawn(script, [String(code)], { stdio: 'ignore' });
              c.once('error', rej);
              c.once('spawn', () => expected.set(c.pid!, code));
              c.once('exit', (got) => (got === code ? res() : rej(new Error(`exit ${got} != ${code}`))));
            });
          }),
        );
      }
      await until(() => events.filter((e) => e.type === 'exit').length >= N, 10_000);
      ac.abort();
      await consumer;
      const mine = events.filter((e) => expected.has(e.tgid));
      const execs = mine.filter((e) => e.type === 'exec');
      const exits = mine.filter((e) => e.type === 'exit');
      expect(execs).toHaveLength(N);
      expect(exits).toHaveLength(N);
      expect(new Set(exits.map((e) => e.tgid))).toEqual(new Set(expected.keys()));
      for (const e of exits) {
        ProcessEventSchema.parse(e);
        expect([e.tgid, e.exitCode, e.signal]).toEqual([e.tgid, expected.get(e.tgid), null]);
        expect(e.comm).toBe(name);
        expect(e.ppid).toBe(process.pid);
        expect(e.durationNs).toBeGreaterThan(0);
        expect(e.durationNs).toBeLessThan(10e9);
      }
      for (const e of execs) expect(e.filename).toBe(script);
      expect((r as unknown as { droppedEvents(): number }).droppedEvents()).toBe(0);
      // The filter kept everything else out.
      expect(events.every((e) => e.comm === name)).toBe(true);
    } finally {
      r.close();
    }
  });

  it('a killed process reports its signal; snapshot matches /proc for a live child', async () => {
    const r = await openProcessReader({ events: true });
    try {
      const events: ProcessEvent[] = [];
      const ac = new AbortController();
      const consumer = (async () => {
        for await (const e of r.events!({ signal: ac.signal })) events.push(e);
      })();
      const busy = spawnBusy();
      await sleep(300);
      const snap = await r.read();
      ProcessSnapshotSchema.parse(snap);
      const p = snap.processes.find((x) => x.tgid === busy.pid)!;
      const st = readStat(busy.pid!)!;
      expect(p).toMatchObject({ ppid: process.pid, comm: 'busybox', threads: 1 });
      expect(p.rssBytes).toBeGreaterThan(0);
      expect(Math.abs(p.rssBytes - st.rssBytes)).toBeLessThanOrEqual(64 * 4096);
      expect(Math.abs(p.cpuNs - (st.userNs + st.systemNs))).toBeLessThan(0.05e9);
      expect(snap.processes.some((x) => x.tgid === process.pid)).toBe(true);
      await kill(busy);
      const exit = await until(() => events.find((e) => e.type === 'exit' && e.tgid === busy.pid), 5000);
      ac.abort();
      await consumer;
      expect(exit).toMatchObject({ exitCode: null, signal: 9, coreDumped: false });
      expect(events.some((e) => e.type === 'fork' && e.tgid === busy.pid && e.ppid === process.pid)).toBe(true);
    } finally {
      r.close();
    }
  });
  it('a name is decoded again when the comm bytes change (the process renames itself), to the same length, shorter and longer', async () => {
    const r = await openProcessReader({ filter: {} });
    // A shell that renames itself (only a thread group may write its own /proc/<pid>/comm) to
    // whatever the request file holds, then removes it.
    const req = join(tmp.dir, 'comm-rename');
    const child = spawn('/bin/busybox', ['sh', '-c', `while :; do if [ -e ${req} ]; then read n < ${req}; echo -n "$n" > /proc/self/comm; rm ${req}; fi; done`], { stdio: 'ignore' });
    try {
      await sleep(100);
      const comm = async (): Promise<string | undefined> => (await r.read()).processes.find((x) => x.tgid === child.pid)?.comm;
      expect(await comm()).toBe('busybox');
      expect(await comm()).toBe('busybox'); // the kept name, read twice
      for (const name of ['busyboy', 'bb', 'a-fifteen-chars', 'busybox']) {
        writeFileSync(`${req}.tmp`, name);
        renameSync(`${req}.tmp`, req); // whole, or not there: the shell never reads half a name
        await until(() => !existsSync(req), 20_000);
        expect(await comm()).toBe(name);
      }
    } finally {
      await kill(child);
      r.close();
    }
  });

  it('traced page faults come with each iterator record: a child touching 4,096 new pages after the reader opened shows them', async () => {
    // The child waits for a line, then writes one byte in each page of 16 MiB it has not touched.
    const touch = "process.stdin.once('data', () => { const b = Buffer.alloc(16 << 20); for (let i = 0; i < b.length; i += 4096) b[i] = 1; process.stdout.write('done'); setTimeout(() => {}, 30000); });";
    const child = spawn(process.execPath, ['-e', touch], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      await until(() => readStat(child.pid!) !== null);
      const r = await openProcessReader({ filter: { tgids: [child.pid!] } });
      try {
        const mine = async () => (await r.read()).processes.find((p) => p.tgid === child.pid)!;
        const before = await mine();
        const done = new Promise((res) => child.stdout!.once('data', res));
        child.stdin!.write('go\n');
        await done;
        const after = await mine();
        const traced = after.faultsTraced! - before.faultsTraced!;
        const kernel = after.minorFaults + after.majorFaults - (before.minorFaults + before.majorFaults);
        // The faults the kernel counted for the process are the faults the tracepoint saw, but
        // for a few taken in kernel mode (a read() into a fresh buffer: page_fault_kernel). A
        // huge page backs 512 pages with one fault: at least 16 faults for 16 MiB either way.
        expect(kernel).toBeGreaterThanOrEqual(16);
        expect(traced).toBeGreaterThanOrEqual(16);
        expect(traced).toBeGreaterThanOrEqual(kernel - 64);
        expect(traced).toBeLessThanOrEqual(kernel + 256);
      } finally {
        r.close();
      }
    } finally {
      await kill(child);
    }
  });
});

describe('network (net.bpf.c)', () => {
  it('100 loopback TCP connections: all seen with ports, owner and exact byte counts', async () => {
    const N = 100;
    const received = new Map<number, number>(); // client port -> bytes the server got
    const server = createServer((sock) => {
      let n = 0;
      sock.on('data', (d) => (n += d.length));
      sock.on('end', () => {
        received.set(sock.remotePort!, n);
        sock.end(Buffer.alloc(10 + (n % 100), 1));
      });
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const r = await openNetworkReader({ filter: { tgids: [process.pid] }, events: true });
    try {
      const opens: number[] = [];
      const ac = new AbortController();
      const consumer = (async () => {
        for await (const e of r.events!({ signal: ac.signal })) if (e.type === 'open' && e.connection.remotePort === port) opens.push(e.connection.localPort);
      })();
      const sent = new Map<number, { sent: number; got: number }>();
      for (let i = 0; i < N; i += 25) {
        await Promise.all(
          Array.from({ length: 25 }, (_, j) => {
            const size = 1000 + (i + j) * 37;
            return new Promise<void>((res, rej) => {
              const c: Socket = connect(port, '127.0.0.1');
              let got = 0;
              c.on('data', (d) => (got += d.length));
              c.once('error', rej);
              let lp = 0;
              c.once('connect', () => {
                lp = c.localPort!;
                c.end(Buffer.alloc(size, 2));
              });
              c.once('close', () => {
                sent.set(lp, { sent: size, got });
                res();
              });
            });
          }),
        );
      }
      await sleep(200);
      const snap = await r.read();
      NetworkSnapshotSchema.parse(snap);
      const active = snap.connections.filter((c) => c.remotePort === port && c.direction === 'active');
      const passive = snap.connections.filter((c) => c.localPort === port && c.direction === 'passive');
      expect(active).toHaveLength(N);
      expect(passive).toHaveLength(N);
      for (const c of active) {
        const s = sent.get(c.localPort)!;
        expect(s, `client port ${c.localPort}`).toBeDefined();
        expect([c.localPort, c.bytesSent, c.bytesReceived]).toEqual([c.localPort, s.sent, s.got]);
        expect(c).toMatchObject({ tgid: process.pid, localAddress: '127.0.0.1', remoteAddress: '127.0.0.1', ipVersion: 4, closed: true });
      }
      for (const c of passive) {
        const s = sent.get(c.remotePort)!;
        expect([c.remotePort, c.bytesReceived, c.bytesSent]).toEqual([c.remotePort, s.sent, s.got]);
        expect(c.tgid).toBe(process.pid);
      }
      // Closed connections are reported once.
      const again = await r.read();
      expect(again.connections.filter((c) => c.remotePort === port || c.localPort === port)).toHaveLength(0);
      await until(() => opens.length >= N, 3000);
      ac.abort();
      await consumer;
      expect(new Set(opens)).toEqual(new Set(sent.keys()));
    } finally {
      r.close();
      await new Promise((res) => server.close(res));
    }
  });

  it('IPv6 loopback connections carry ::1', async () => {
    const server = createServer((s) => s.resume());
    await new Promise<void>((res) => server.listen(0, '::1', res));
    const port = (server.address() as { port: number }).port;
    const r = await openNetworkReader({ filter: { tgids: [process.pid] } });
    try {
      const c = connect(port, '::1');
      await new Promise<void>((res) => c.once('connect', () => res()));
      c.write('hello');
      await sleep(100);
      const snap = await r.read();
      const conn = snap.connections.find((x) => x.remotePort === port);
      expect(conn).toMatchObject({ ipVersion: 6, localAddress: '::1', remoteAddress: '::1', localPort: c.localPort, bytesSent: 5, state: 'ESTABLISHED', closed: false });
      c.destroy();
    } finally {
      r.close();
      await new Promise((res) => server.close(res));
    }
  });
});

describe('network: walks tcp_conns only after a program wrote to it', () => {
  it('an idle connection: no walk, the same numbers, its duration still running; a byte sent: walked and counted; closed: reported once', async () => {
    let got = 0;
    const server = createServer((s) => s.on('data', (d) => (got += d.length)));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const r = await openNetworkReader({ filter: { tgids: [process.pid] } });
    const walks = vi.spyOn(BpfMap.prototype, 'readAll');
    try {
      const c = connect(port, '127.0.0.1');
      await new Promise<void>((res) => c.once('connect', () => res()));
      c.write('hello');
      await until(() => got === 5, 3000);
      await sleep(50);
      const mine = (s: Awaited<ReturnType<typeof r.read>>) => s.connections.find((x) => x.remotePort === port)!;
      const a = await r.read();
      expect(mine(a)).toMatchObject({ bytesSent: 5, state: 'ESTABLISHED', closed: false });
      walks.mockClear();
      await sleep(30);
      const b = await r.read();
      expect(walks).not.toHaveBeenCalled(); // nothing written since a: the map was not walked
      expect(mine(b)).toMatchObject({ bytesSent: 5, bytesReceived: 0, state: 'ESTABLISHED' });
      expect(mine(b).durationNs!).toBeGreaterThan(mine(a).durationNs! + 20e6);
      c.write('!!');
      await until(() => got === 7, 3000);
      const d = await r.read();
      expect(walks).toHaveBeenCalled();
      expect(mine(d).bytesSent).toBe(7);
      expect(mine(a).bytesSent).toBe(5); // the earlier snapshot keeps its numbers
      c.destroy();
      const closed = await until(async () => {
        const s = await r.read();
        return mine(s)?.closed ? s : null;
      }, 3000);
      expect(closed).toBeTruthy();
      const after = await r.read();
      expect(after.connections.find((x) => x.remotePort === port)).toBeUndefined(); // reported once
      NetworkSnapshotSchema.parse(after);
    } finally {
      walks.mockRestore();
      r.close();
      await new Promise((res) => server.close(res));
    }
  });
});

describe('disk (blockio.bpf.c)', () => {
  it('a direct-I/O write of 4 MiB is seen as at least 4 MiB on the file\'s disk, for the writer', async () => {
    const name = 'st-dd-probe';
    const dd = join(tmp.dir, name);
    copyFileSync(execFileSync('sh', ['-c', 'command -v dd'], { encoding: 'utf8' }).trim(), dd);
    execFileSync('chmod', ['755', dd]);
    const r = await openDiskReader({ filter: { comm: name } });
    try {
      const size = 4 << 20;
      expect(await run(dd, ['if=/dev/zero', `of=${tmp.dir}/direct.bin`, 'bs=1M', 'count=4', 'oflag=direct', 'status=none'])).toBe(0);
      const dev = fileDisk(tmp.dir);
      const snap = await until(async () => {
        const s = await r.read();
        return (s.processes.find((p) => p.comm === name)?.writeBytes ?? 0) >= size ? s : null;
      }, 3000);
      expect(snap).toBeTruthy();
      DiskSnapshotSchema.parse(snap);
      const p = snap!.processes.find((x) => x.comm === name)!;
      expect(p.dev).toBe(dev);
      expect(p.writeBytes).toBeGreaterThanOrEqual(size);
      expect(p.writeOps).toBeGreaterThanOrEqual(1);
      const d = snap!.devices.find((x) => x.dev === dev)!;
      expect(d.writeBytes).toBeGreaterThanOrEqual(size);
      expect(d.latency!.slots.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(p.writeOps!);
      // The comm filter kept every other writer out.
      expect(snap!.processes.every((x) => x.comm === name)).toBe(true);
      // No request of the writer completed since: the same records, in new arrays (the maps
      // were not walked again: the completion program's write counter stood still).
      const again = await r.read();
      expect(again.processes).not.toBe(snap!.processes);
      expect(again.processes.find((x) => x.comm === name)).toBe(p);
      expect(again.devices.find((x) => x.dev === dev)).toBe(d);
      // One more write: new records with the new totals; the earlier snapshot keeps its numbers.
      const before = structuredClone(snap!.processes);
      expect(await run(dd, ['if=/dev/zero', `of=${tmp.dir}/direct2.bin`, 'bs=1M', 'count=1', 'oflag=direct', 'status=none'])).toBe(0);
      const next = await until(async () => {
        const s = await r.read();
        return (s.devices.find((x) => x.dev === dev)?.writeBytes ?? 0) >= d.writeBytes! + (1 << 20) ? s : null;
      }, 3000);
      expect(next).toBeTruthy();
      expect(next!.devices.find((x) => x.dev === dev)).not.toBe(d);
      // (Each dd is a process of its own: the first one's entry is there with its numbers, and the new one's.)
      expect(next!.processes.filter((x) => x.comm === name)).toHaveLength(2);
      expect(next!.processes.find((x) => x.comm === name && x.tgid === p.tgid)).toEqual(p);
      expect(snap!.processes).toEqual(before);
    } finally {
      r.close();
    }
  });
});

describe('syscalls (syscalls.bpf.c)', () => {
  const src = `#include <unistd.h>
#include <sys/syscall.h>
#include <stdlib.h>
int main(int argc, char **argv) { char b[8]; long n = atol(argv[1]);
  if (read(0, b, sizeof b) <= 0) return 2;
  for (long i = 0; i < n; i++) syscall(SYS_getppid);
  return 0; }`;
  const bin = join(tmp.dir, 'st-sys-probe');

  /** Runs the probe: it waits for a line on stdin (so the test can set the filter first), then makes n getppid calls. */
  async function probe(n: number, before: (pid: number) => Promise<void>): Promise<number> {
    const c = spawn(bin, [String(n)], { stdio: ['pipe', 'ignore', 'ignore'] });
    await new Promise<void>((res) => c.once('spawn', () => res()));
    await before(c.pid!);
    const exited = new Promise<number | null>((res) => c.once('exit', (code) => res(code)));
    c.stdin!.end('go\n');
    expect(await exited).toBe(0);
    return c.pid!;
  }

  it('a pair not called since the previous read keeps its record object; a called one gets a new record, and the earlier snapshot keeps its numbers', async () => {
    const loop = join(tmp.dir, 'st-sys-loop');
    writeFileSync(`${loop}.c`, `#include <unistd.h>
#include <sys/syscall.h>
#include <stdlib.h>
int main(int argc, char **argv) { char b[8]; long n = atol(argv[1]);
  while (read(0, b, 1) == 1) { for (long i = 0; i < n; i++) syscall(SYS_getppid); if (write(1, "k", 1) != 1) return 3; }
  return 0; }`);
    execFileSync('cc', ['-O1', '-o', loop, `${loop}.c`]);
    const nr = syscallNumber('getppid')!;
    const c = spawn(loop, ['1000'], { stdio: ['pipe', 'pipe', 'ignore'] });
    await new Promise<void>((res) => c.once('spawn', () => res()));
    const r = await openSyscallsReader({ filter: { tgids: [c.pid!] } });
    /** One round of 1,000 getppid calls, done when the probe acknowledges it. */
    const round = () => new Promise<void>((res) => { c.stdout!.once('data', () => res()); c.stdin!.write('g'); });
    try {
      await round();
      const pair = (snap: { syscalls: Array<{ tgid: number; nr: number; count: number }> }) => snap.syscalls.find((x) => x.tgid === c.pid && x.nr === nr);
      const a = await r.read();
      expect(pair(a)?.count).toBe(1000);
      const b = await r.read();
      expect(pair(b)).toBe(pair(a));
      await round();
      const d = await r.read();
      expect(pair(d)).not.toBe(pair(a));
      expect(pair(d)?.count).toBe(2000);
      expect(pair(a)?.count).toBe(1000);
    } finally {
      r.close();
      c.stdin!.end();
      await kill(c);
    }
  });

  it('counts a known number of getppid calls exactly for the pid, and none when the filter excludes it', async () => {
    writeFileSync(`${bin}.c`, src);
    execFileSync('cc', ['-O1', '-o', bin, `${bin}.c`]);
    const nr = syscallNumber('getppid')!;
    // Opened for pid 1 (init) only, then switched to the probe before it starts its calls.
    const r = await openSyscallsReader({ filter: { tgids: [1] } });
    try {
      const N = 12345;
      const pid = await probe(N, async (p) => r.setFilter!(resolve({ tgids: [p] })));
      const snap = await r.read();
      SyscallsSnapshotSchema.parse(snap);
      const e = snap.syscalls.find((s) => s.tgid === pid && s.nr === nr);
      expect(e).toMatchObject({ name: 'getppid', count: N, errors: 0 });
      expect(e!.totalNs).toBeGreaterThan(0);
      expect(snap.syscalls.every((s) => s.tgid === pid || s.tgid === 1)).toBe(true);
      expect(snap.syscalls.some((s) => s.tgid === process.pid)).toBe(false);
      // Switch the filter away (no reload): a second run is not counted at all.
      r.setFilter!(resolve({ tgids: [1] }));
      const pid2 = await probe(N, async () => {});
      const snap2 = await r.read();
      expect(snap2.syscalls.filter((s) => s.tgid === pid2)).toEqual([]);
    } finally {
      r.close();
    }
  });
});

describe('createMonitor', () => {
  it('opens the default families in parallel under 4 MiB of map memory; procfs backend falls back where it can', async () => {
    const m = await createMonitor({ families: ['cpu', 'process', 'network', 'disk', 'syscalls'] });
    try {
      expect([...m.failures.keys()]).toEqual([]);
      for (const r of m.readers.values()) expect(r.backend).toBe('ebpf');
      expect(m.memoryBytes()).toBeLessThan(4 << 20);
      const { snapshots, errors } = await m.read();
      expect(errors).toEqual({});
      expect(Object.keys(snapshots).sort()).toEqual(['cpu', 'disk', 'network', 'process', 'syscalls']);
      expect(snapshots.process!.processes.some((p) => p.tgid === process.pid)).toBe(true);
    } finally {
      m.close();
    }
    // All eight families: 5.0 MiB here (12.6 before the GPU and thermal maps were sized, or made
    // sparse); docs/metrics.md gives the reason for each map over 256 KiB.
    const all = await createMonitor({ families: ['cpu', 'process', 'network', 'disk', 'syscalls', 'gpu', 'thermal', 'power'] });
    try {
      expect([...all.failures.keys()]).toEqual([]);
      expect(all.memoryBytes()).toBeLessThan(5.5 * (1 << 20));
    } finally {
      all.close();
    }
    const p = await createMonitor({ families: ['cpu', 'process', 'syscalls'], backend: 'procfs' });
    try {
      expect([...p.readers.values()].map((r) => r.backend)).toEqual(['procfs', 'procfs']);
      expect([...p.failures.keys()]).toEqual(['syscalls']);
      expect(p.memoryBytes()).toBe(0);
    } finally {
      p.close();
    }
  });
});


describe('container filter in the kernel', () => {
  it('a container id filter keeps exactly the container\'s processes (cgroup ids checked by the programs)', async () => {
    const docker = (...a: string[]): string => execFileSync('docker', a, { encoding: 'utf8', timeout: 60_000 }).trim();
    const id = docker('run', '-d', '--rm', '--label', 'smoothtask.test=metrics-ebpf', 'smoothtask/busybox:latest', 'sh', '-c', 'while :; do :; done');
    try {
      const cg = resolveContainerRef(id);
      const cpu = await openCpuReader({ filter: { containers: [id.slice(0, 12)] } });
      const sys = await openSyscallsReader({ filter: { containers: [id] } });
      try {
        await sleep(1000);
        const c = await cpu.read();
        const s = await sys.read();
        expect(c.processes.length).toBeGreaterThan(0);
        for (const p of c.processes) expect(cgroupPathOfPid(p.tgid), `pid ${p.tgid}`).toBe(cg.relPath);
        expect(c.processes.some((p) => p.cpuNs > 0.1e9)).toBe(true);
        expect(s.syscalls.every((x) => cgroupPathOfPid(x.tgid) === cg.relPath)).toBe(true);
        expect(c.processes.some((p) => p.tgid === process.pid)).toBe(false);
      } finally {
        cpu.close();
        sys.close();
      }
    } finally {
      docker('rm', '-f', id);
    }
  });
});

describe('cpu: process names', () => {
  it('a process that execs right after it was first seen shows its new comm at the next read', async () => {
    const name = 'st-comm-exec';
    const bin = join(tmp.dir, name);
    writeFileSync(bin, '#!/bin/busybox sh\nwhile :; do :; done\n', { mode: 0o755 });
    // busybox runs `sh` (comm: busybox) and spins until the flag file exists, then execs the script (comm: its name)
    const flag = join(tmp.dir, 'comm-exec-go');
    const child = spawn('/bin/busybox', ['sh', '-c', `while [ ! -e ${flag} ]; do :; done; exec ${bin}`], { stdio: 'ignore' });
    try {
      await sleep(50);
      await using_(await openCpuReader({ filter: { tgids: [child.pid!] } }), async (r) => {
        await sleep(100);
        const snap = await r.read();
        const first = snap.processes.find((p) => p.tgid === child.pid);
        expect(first?.comm, JSON.stringify(snap.processes)).toBe('busybox');
        writeFileSync(flag, '');
        await sleep(300);
        const second = (await r.read()).processes.find((p) => p.tgid === child.pid);
        expect(second?.comm).toBe(name);
      });
    } finally {
      await kill(child);
    }
  });
});

describe('lifecycle', () => {
  function programIds(name: string): number[] {
    const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Array<{ id: number; name?: string }>;
    return all.filter((p) => p.name === name).map((p) => p.id);
  }

  /** Ids of the programs called `name` that this process holds an fd of (other test files run in other processes). */
  function ownProgramIds(name: string): Set<number> {
    const held = new Set<number>();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
        const m = /prog_id:\s*(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
        if (m) held.add(Number(m[1]));
      } catch {
        /* closed meanwhile */
      }
    }
    return new Set(programIds(name).filter((id) => held.has(id)));
  }

  it('the power family estimates per-process CPU from the process iterator (loaded alone: no event program), not /proc/<pid>/stat', async () => {
    const iters = ownProgramIds('st_proc_iter');
    const execs = ownProgramIds('st_proc_exec').size;
    const faults = ownProgramIds('st_page_fault_u').size;
    const busy = spawnBusy();
    // Filtered to the child: on a loaded host it need not be among the top processes of an unfiltered estimate.
    const m = await createMonitor({ families: ['power'], filter: { tgids: [busy.pid!] }, required: true });
    try {
      expect([...ownProgramIds('st_proc_iter')].filter((id) => !iters.has(id))).toHaveLength(1);
      expect(ownProgramIds('st_proc_exec').size).toBe(execs);
      expect(ownProgramIds('st_page_fault_u').size).toBe(faults);
      await m.read();
      await sleep(1000);
      const snap = (await m.read()).snapshots.power!;
      expect(snap.processes.map((p) => p.pid)).toEqual([busy.pid]);
      // it got some CPU in that second, however busy the host (the procfs figure bounds it)
      expect(snap.processes[0]!.cpuSeconds).toBeGreaterThan(0.01);
      expect(snap.processes[0]!.cpuSeconds).toBeLessThan(2);
      const mine = snap.processes[0]!;
      expect(mine!.comm).toBe('busybox');
    } finally {
      m.close();
      await kill(busy);
    }
  });

  it('with the process family in the same monitor, the power family reads through its iterator and releases its own', async () => {
    const iters = ownProgramIds('st_proc_iter');
    const busy = spawnBusy();
    const m = await createMonitor({ families: ['process', 'power'], filter: { tgids: [busy.pid!] }, required: true });
    try {
      // Opened: the process family's iterator and the power family's own.
      expect([...ownProgramIds('st_proc_iter')].filter((id) => !iters.has(id))).toHaveLength(2);
      await m.read();
      // The first read found the process family: the power family's own object is closed.
      await until(() => [...ownProgramIds('st_proc_iter')].filter((id) => !iters.has(id)).length === 1, 3000);
      await sleep(1000);
      const { snapshots } = await m.read();
      const power = snapshots.power!;
      expect(power.processes.map((p) => p.pid)).toEqual([busy.pid]);
      expect(power.processes[0]!.cpuSeconds).toBeGreaterThan(0.01);
      expect(power.processes[0]!.cpuSeconds).toBeLessThan(2);
      // Both read the same pass: the process family's snapshot of the child in this tick.
      expect(snapshots.process!.processes.map((p) => p.tgid)).toEqual([busy.pid]);
    } finally {
      m.close();
      await kill(busy);
    }
  });

  it('close() detaches and unloads the programs; reads then throw ClosedError; close is idempotent', async () => {
    const before = new Set(programIds('st_sched_switch'));
    const r = await openCpuReader();
    const mine = programIds('st_sched_switch').filter((id) => !before.has(id));
    expect(mine).toHaveLength(1);
    expect(r.memoryBytes()).toBeGreaterThan(0);
    r.close();
    r.close();
    expect(r.closed).toBe(true);
    expect(r.memoryBytes()).toBe(0);
    await expect(r.read()).rejects.toThrow(/closed/);
    await until(() => !programIds('st_sched_switch').includes(mine[0]!), 3000);
    expect(programIds('st_sched_switch')).not.toContain(mine[0]);
  });

  it('monitor: merged events of several families, filter changed at run time', async () => {
    const name = 'st-mon-probe';
    const script = exitScript(tmp.dir, name);
    const m = await createMonitor({ families: ['process', 'network'], events: true, filter: { comm: 'no-such-comm' }, required: true });
    try {
      const got: Array<{ family: string; type: string; tgid: number }> = [];
      const ac = new AbortController();
      const consumer = (async () => {
        for await (const { family, event } of m.events({ signal: ac.signal })) {
          const e = event as ProcessEvent;
          got.push({ family, type: e.type, tgid: e.tgid });
        }
      })();
      expect(await run(script, ['3'])).toBe(3); // filtered out: comm does not match
      await m.setFilter({ comm: name });
      expect(m.filter.comm).toBe(name);
      const pids: number[] = [];
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((res) => {
          const c = spawn(script, [String(i)], { stdio: 'ignore' });
          pids.push(c.pid!);
          c.once('exit', () => res());
        });
      }
      await until(() => got.filter((g) => g.type === 'exit').length >= 3, 5000);
      ac.abort();
      await consumer;
      expect(got.filter((g) => g.type === 'exec').map((g) => g.tgid).sort()).toEqual([...pids].sort());
      expect(got.filter((g) => g.type === 'exit').map((g) => g.tgid).sort()).toEqual([...pids].sort());
      expect(got.every((g) => g.family === 'process')).toBe(true);
    } finally {
      m.close();
    }
  });

  it('monitor.eventBatches() into an alert rule: arrays of events per batch, counted by an event rule per comm', async () => {
    const name = 'st-batch-probe';
    const script = exitScript(tmp.dir, name);
    const m = await createMonitor({ families: ['process'], events: true, filter: { comm: name }, required: true });
    const engine = new AlertEngine({
      rules: [{ name: 'Exits', expr: { event: { source: 'monitor', match: { family: 'process' }, where: (e) => (e.event as ProcessEvent).type === 'exit' }, count: { value: 4, window: '1m' } } }],
    });
    try {
      const batches: Array<Array<{ family: string; type: string }>> = [];
      engine.addEventBatchSource('monitor', (signal) =>
        (async function* () {
          for await (const b of m.eventBatches({ signal })) {
            batches.push(b.map(({ family, event }) => ({ family, type: (event as ProcessEvent).type })));
            yield b;
          }
        })(),
      );
      await sleep(100);
      for (let i = 0; i < 4; i++) expect(await run(script, [String(i)])).toBe(i);
      await until(() => engine.stats.events >= 8, 5000); // 4 execs + 4 exits
      await engine.evaluate();
      expect(engine.alerts().filter((a) => a.state === 'firing').map((a) => a.rule)).toEqual(['Exits']);
      expect(engine.alerts()[0]!.value).toBe(4); // the execs did not count
      expect(batches.every((b) => Array.isArray(b) && b.length > 0)).toBe(true);
      const flat = batches.flat();
      expect(flat.every((e) => e.family === 'process')).toBe(true);
      expect(flat.filter((e) => e.type === 'exit')).toHaveLength(4);
    } finally {
      await engine.close();
      m.close();
    }
  });

  it('the ring buffer is fed only while someone iterates events()', async () => {
    const name = 'st-evt-probe';
    const script = exitScript(tmp.dir, name);
    const r = await openProcessReader({ filter: { comm: name }, events: true });
    try {
      // Not iterated yet: these exits produce no records at all.
      for (let i = 0; i < 3; i++) expect(await run(script, ['1'])).toBe(1);
      const got: ProcessEvent[] = [];
      const ac = new AbortController();
      const consumer = (async () => {
        for await (const e of r.events!({ signal: ac.signal })) got.push(e);
      })();
      expect(await run(script, ['7'])).toBe(7);
      await until(() => got.some((e) => e.type === 'exit'), 3000);
      ac.abort();
      await consumer;
      expect(got.filter((e) => e.type === 'exit').map((e) => e.exitCode)).toEqual([7]);
      expect((r as unknown as { droppedEvents(): number }).droppedEvents()).toBe(0);
    } finally {
      r.close();
    }
  });
});

// The procfs backend against ground truth the test creates: a busy child, a sleeping child,
// TCP connections on loopback, a direct-I/O write.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveFilter } from '../../lib/metrics/cgroup.js';
import { ProcfsCpuReader, ProcfsDiskReader, ProcfsNetworkReader, ProcfsProcessReader } from '../../lib/metrics/procfs-readers.js';
import { KeptFiles, blockDeviceName, formatIpv6, parseStat, readSchedstat, readStat, readText } from '../../lib/metrics/procfs.js';
import { CpuSnapshotSchema, DiskSnapshotSchema, NetworkSnapshotSchema, ProcessSnapshotSchema } from '../../lib/metrics/schemas.js';
import { ClosedError } from '../../lib/ebpf/errors.js';
import { fileDisk, kill, run, sleep, spawnBusy, spawnSleeper, tempDir } from './helpers.js';

describe('procfs parsers', () => {
  it('parses stat lines with spaces and parens in comm', () => {
    const s = parseStat('42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 3 0 150 50 0 0 20 0 2 0 1000 1048576 25 18446744073709551615');
    expect(s).toMatchObject({ pid: 42, comm: 'a (b) c', state: 'S', ppid: 1, minorFaults: 10, majorFaults: 3, threads: 2, vmBytes: 1048576 });
    expect(s!.userNs).toBeCloseTo(1.5e9, -6);
    expect(s!.systemNs).toBeCloseTo(0.5e9, -6);
  });

  it('readText reads small and large files whole, and null for what cannot be read', () => {
    const { dir, cleanup } = tempDir('readtext-');
    const big = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n'); // > the 16 KiB first buffer
    writeFileSync(join(dir, 'big'), big);
    writeFileSync(join(dir, 'small'), 'abc\n');
    writeFileSync(join(dir, 'exact'), 'x'.repeat(16 * 1024));
    expect(readText(join(dir, 'big'))).toBe(big);
    expect(readText(join(dir, 'small'))).toBe('abc\n'); // after a big one: no stale bytes
    expect(readText(join(dir, 'exact'))).toBe('x'.repeat(16 * 1024));
    expect(readText(join(dir, 'missing'))).toBeNull();
    expect(readText(dir)).toBeNull(); // a directory: EISDIR on read
    expect(readText('/proc/self/stat')).toMatch(/^\d+ \(/);
    expect(readText('/proc/self/status')).toContain('\nVmRSS:');
    // A seq_file of many records hands out at most a page per read(): read on to the end.
    const maps = readText('/proc/self/maps')!;
    expect(maps.length).toBeGreaterThan(3 * 4096);
    expect(maps.endsWith('\n')).toBe(true);
    expect(maps.split('\n').length).toBeGreaterThan(readFileSync('/proc/self/maps', 'latin1').split('\n').length * 0.9);
    cleanup();
  });

  it('KeptFiles: a kept procfs file reads fresh values each time, and null once its thread is gone (never stale text)', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const busy = spawnBusy();
    const files = new KeptFiles(3, 2);
    const fd0 = fds();
    try {
      await sleep(50);
      const first = readSchedstat(busy.pid!, busy.pid!, files)!;
      expect(files.size).toBe(1);
      expect(fds()).toBe(fd0 + 1);
      await sleep(100);
      const second = readSchedstat(busy.pid!, busy.pid!, files)!;
      const fresh = readSchedstat(busy.pid!, busy.pid!)!;
      expect(second.cpuNs).toBeGreaterThan(first.cpuNs); // the file was generated anew, not the old text
      expect(second.cpuNs).toBeLessThanOrEqual(fresh.cpuNs);
      expect(fds()).toBe(fd0 + 1); // the same descriptor, no new one
      await kill(busy);
      expect(readSchedstat(busy.pid!, busy.pid!, files)).toBeNull();
      expect(files.size).toBe(0); // the dead task's descriptor was closed
      expect(fds()).toBe(fd0);
    } finally {
      await kill(busy);
      files.close();
    }
  });

  it('KeptFiles: at most maxOpen kept, unread files closed after keepRounds, missing files not kept, close() closes all', () => {
    const { dir, cleanup } = tempDir('kept-');
    const fds = () => readdirSync('/proc/self/fd').length;
    const fd0 = fds();
    const files = new KeptFiles(3, 2);
    try {
      for (let i = 0; i < 5; i++) writeFileSync(join(dir, `f${i}`), `v${i}`);
      for (let i = 0; i < 5; i++) expect(files.read(join(dir, `f${i}`))).toBe(`v${i}`);
      expect(files.size).toBe(3);
      expect(fds()).toBe(fd0 + 3);
      expect(files.read(join(dir, 'missing'))).toBeNull();
      expect(files.read(dir)).toBeNull(); // EISDIR: opened, failed, closed
      expect(files.size).toBe(3);
      expect(fds()).toBe(fd0 + 3);
      // Rewritten in place (same inode): the kept descriptor reads the new bytes, shorter or longer.
      writeFileSync(join(dir, 'f4'), 'longer value');
      expect(files.read(join(dir, 'f4'))).toBe('longer value');
      writeFileSync(join(dir, 'f4'), 'x');
      expect(files.read(join(dir, 'f4'))).toBe('x');
      for (let r = 0; r < 3; r++) {
        files.read(join(dir, 'f4'));
        files.endRound();
      }
      expect(files.size).toBe(1); // only the one read every round
      files.close();
      expect(files.size).toBe(0);
      expect(fds()).toBe(fd0);
      expect(files.read(join(dir, 'f0'))).toBe('v0'); // after close: read and closed again
      expect(fds()).toBe(fd0);
    } finally {
      files.close();
      cleanup();
    }
  });

  it('formats IPv6 addresses', () => {
    const b = new Uint8Array(16);
    expect(formatIpv6(b)).toBe('::');
    b[15] = 1;
    expect(formatIpv6(b)).toBe('::1');
    b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
    expect(formatIpv6(b)).toBe('::ffff:127.0.0.1');
    b.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    expect(formatIpv6(b)).toBe('2001:db8::10');
  });

  it('reads its own stat', () => {
    const s = readStat(process.pid);
    expect(s?.pid).toBe(process.pid);
    expect(s!.rssBytes).toBeGreaterThan(10 << 20);
    expect(readStat(2 ** 22 + 7)).toBeNull();
  });
});

describe('procfs readers', () => {
  const children: ReturnType<typeof spawnBusy>[] = [];
  afterAll(async () => {
    for (const c of children) await kill(c);
  });

  it('cpu: a busy child is charged about the wall time it ran, threads and switches per thread', async () => {
    const busy = spawnBusy();
    children.push(busy);
    await sleep(50);
    const r = new ProcfsCpuReader(resolveFilter({ tgids: [busy.pid!] }));
    const a = await r.read();
    await sleep(1000);
    const b = await r.read();
    CpuSnapshotSchema.parse(b);
    expect(b.backend).toBe('procfs');
    expect(b.processes.map((p) => p.tgid)).toEqual([busy.pid]);
    const d = b.processes[0]!.cpuNs - a.processes[0]!.cpuNs;
    // A shared 2-core machine gives no lower bound from wall time; an upper one it does.
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(1.2e9);
    const st = readStat(busy.pid!)!;
    expect(Math.abs(b.processes[0]!.cpuNs - (st.userNs + st.systemNs))).toBeLessThanOrEqual(0.05e9);
    expect(b.threads).toHaveLength(1);
    expect(b.threads[0]!.involuntary).toBeGreaterThan(0);
    r.close();
    r.close();
    await expect(r.read()).rejects.toBeInstanceOf(ClosedError);
  });

  it('process: sees a sleeping child with its parent, comm and memory', async () => {
    const s = spawnSleeper();
    children.push(s);
    await sleep(100);
    const r = new ProcfsProcessReader(resolveFilter({}));
    const snap = await r.read();
    ProcessSnapshotSchema.parse(snap);
    const me = snap.processes.find((p) => p.tgid === s.pid);
    expect(me).toMatchObject({ ppid: process.pid, comm: 'busybox', state: 'S', threads: 1 });
    expect(me!.rssBytes).toBeGreaterThan(0);
    expect(me!.lifetimeNs).toBeGreaterThan(50e6);
    expect(me!.lifetimeNs).toBeLessThan(60e9);
    expect(snap.processes.length).toBeGreaterThan(10);
    // Filter by comm prefix.
    r.setFilter(resolveFilter({ comm: 'busy', tgids: [s.pid!] }));
    expect((await r.read()).processes.map((p) => p.tgid)).toEqual([s.pid]);
    r.close();
  });

  it('network: loopback connections with ports and the owning process', async () => {
    const server: Server = createServer((sock) => sock.on('data', () => {}));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    const clients: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const c = connect(port, '127.0.0.1');
      await new Promise<void>((res) => c.once('connect', () => res()));
      clients.push(c);
    }
    const r = new ProcfsNetworkReader(resolveFilter({ tgids: [process.pid] }));
    const snap = await r.read();
    NetworkSnapshotSchema.parse(snap);
    const out = snap.connections.filter((c) => c.remotePort === port);
    const inn = snap.connections.filter((c) => c.localPort === port);
    expect(out).toHaveLength(5);
    expect(inn).toHaveLength(5);
    expect(new Set(out.map((c) => c.localPort))).toEqual(new Set(clients.map((c) => c.localPort)));
    for (const c of [...out, ...inn]) expect(c).toMatchObject({ state: 'ESTABLISHED', tgid: process.pid, localAddress: '127.0.0.1', bytesSent: null });
    expect(snap.processes.find((p) => p.tgid === process.pid)?.connections).toBeGreaterThanOrEqual(10);
    for (const c of clients) c.destroy();
    await new Promise((res) => server.close(res));
    r.close();
  });

  it('disk: a direct write shows in diskstats on the file\'s disk', async () => {
    const { dir, cleanup } = tempDir('st-procfs-disk-');
    try {
      const r = new ProcfsDiskReader(resolveFilter({}));
      const before = await r.read();
      const size = 4 << 20;
      const dev = fileDisk(dir);
      expect(await run('dd', ['if=/dev/zero', `of=${dir}/direct`, 'bs=1M', 'count=4', 'oflag=direct', 'status=none'])).toBe(0);
      const after = await r.read();
      DiskSnapshotSchema.parse(after);
      const disk = (s: typeof after) => s.devices.find((d) => d.dev === dev);
      expect(disk(after), `disk ${dev} in ${after.devices.map((d) => d.dev).join(',')}`).toBeDefined();
      expect(disk(after)!.writeBytes - disk(before)!.writeBytes).toBeGreaterThanOrEqual(size);
      expect(disk(after)!.name).toBe(blockDeviceName(dev));
      r.close();
    } finally {
      cleanup();
    }
  });
});

/**
 * The eBPF backend of the built-in families (cpu, process, network, disk, syscalls) over the
 * bundled objects sched, proc, net, blockio and syscalls.
 * @module
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { u32, u64, u64n } from '../ebpf/codec.js';
import type { BpfMap } from '../ebpf/map.js';
import type { IterLink, RingBufferLike } from '../ebpf/types.js';
import { BpfReaderBase, monoToEpochMs, monotonicNowNs, type BpfReaderOptions } from './bpf-base.js';
import type { ResolvedFilter } from './family.js';
import {
  stBioDev,
  stBioProc,
  stBioProcKey,
  stProcEvent,
  stProcStats,
  stProcTask,
  stSchedCpu,
  stSchedHist,
  stSchedOncpu,
  stSyscallKey,
  stSyscallStats,
  stTcpConn,
  stTcpEvent,
  TCP_FLAGS,
} from './bpf-structs.js';
import { cgroup2Mount } from './cgroup.js';
import { perProcess } from './procfs-readers.js';
import { blockDeviceName, formatIpv6, pageSize, readSchedstat, readText } from './procfs.js';
import {
  TCP_STATES,
  type CpuProcess,
  type CpuSnapshot,
  type CpuThread,
  type DiskSnapshot,
  type NetworkSnapshot,
  type ProcessEvent,
  type ProcessInfo,
  type ProcessSnapshot,
  type SyscallsSnapshot,
  type TcpConnection,
  type TcpEvent,
} from './schemas.js';
import { syscallName } from './syscall-names.js';
import { ConfigError } from '../errors/index.js';

type Decoded<C> = C extends { decode(...a: never[]): infer T } ? T : never;

function commOf(tgid: number): string {
  return readText(`/proc/${tgid}/comm`)?.trimEnd() ?? '';
}

// Cgroup id -> path index, rebuilt (bounded walk) when an unknown id shows up.
let cgroupIndex = new Map<string, string>();
function cgroupPath(id: string): string | null {
  if (!cgroupIndex.has(id)) {
    const mount = cgroup2Mount();
    if (!mount) return null;
    const idx = new Map<string, string>();
    const queue = [mount];
    let seen = 0;
    while (queue.length && seen < 5000) {
      const dir = queue.shift() as string;
      seen++;
      try {
        idx.set(statSync(dir, { bigint: true }).ino.toString(), dir === mount ? '/' : dir.slice(mount.length));
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(dir, e.name));
      } catch {
        /* removed meanwhile */
      }
    }
    cgroupIndex = idx;
  }
  return cgroupIndex.get(id) ?? null;
}

/** Async iterable over a ring buffer, mapped, ending when `signal` aborts. */
async function* mapEvents<R, E>(rb: RingBufferLike<R>, f: (r: R) => E | null, signal?: AbortSignal, active?: (d: 1 | -1) => void): AsyncGenerator<E> {
  active?.(1);
  const it = rb[Symbol.asyncIterator]();
  // A pending next() may never settle when no record comes: race it with the abort.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<{ done: true; value: undefined }>((res) => {
    onAbort = () => res({ done: true, value: undefined });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    for (;;) {
      if (signal?.aborted) return;
      const n = await Promise.race([it.next(), aborted]);
      if (n.done) return;
      const e = f(n.value as R);
      if (e !== null) yield e;
    }
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    void it.return?.();
    active?.(-1);
  }
}

// ---------------------------------------------------------------------------------- cpu

/** eBPF `cpu` reader over bpf/sched.bpf.c. */
export class EbpfCpuReader extends BpfReaderBase<CpuSnapshot> {
  readonly family = 'cpu';
  readonly #threads: BpfMap<number, Decoded<typeof stSchedCpu>>;
  readonly #exited: BpfMap<number, Decoded<typeof stSchedCpu>>;
  readonly #cgroups: BpfMap<bigint, number>;
  readonly #hist: BpfMap<number, Decoded<typeof stSchedHist>>;
  readonly #oncpu: BpfMap<number, Decoded<typeof stSchedOncpu>>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#threads = this.map('thread_cpu', { key: u32, value: stSchedCpu });
    this.#exited = this.map('exited_cpu', { key: u32, value: stSchedCpu });
    this.#cgroups = this.map('cgroup_cpu', { key: u64, value: u64n });
    this.#hist = this.map('runq_hist', { key: u32, value: stSchedHist });
    this.#oncpu = this.map('oncpu_since', { key: u32, value: stSchedOncpu });
  }

  /**
   * A thread running right now has run since its last switch-out, which is when the map
   * entry was written: its exact current runtime is in /proc (at most one file per CPU).
   */
  #runningNow(threads: Map<number, Decoded<typeof stSchedCpu>>): void {
    const f = this.filter;
    const onlyTgids = f.cgroupIds.length === 0 && f.comm === undefined;
    for (const c of this.#oncpu.getPerCpu(0) ?? []) {
      if (!c.tid) continue;
      let t = threads.get(c.tid);
      if (!t) {
        // Never switched out since the reader opened: count it when the filter surely passes it.
        if (!onlyTgids || (f.tgids.length && !f.tgids.includes(c.tgid))) continue;
        t = { tgid: c.tgid, oncpu_ns: 0, voluntary: 0, involuntary: 0, runq_ns: 0, runq_count: 0, cgroup_id: 0 };
      }
      const ss = readSchedstat(c.tgid, c.tid);
      if (!ss || ss.cpuNs <= t.oncpu_ns) continue;
      threads.set(c.tid, { ...t, oncpu_ns: ss.cpuNs, runq_ns: Math.max(t.runq_ns, ss.runqNs), runq_count: Math.max(t.runq_count, ss.slices) });
    }
  }

  #seeded: Promise<void> | undefined;

  /** Enters every thread the filter passes (the seed iterator), once per filter. */
  #seed(): Promise<void> {
    this.#seeded ??= this.iterator('st_sched_seed')
      .read()
      .then(() => undefined);
    return this.#seeded;
  }

  override async setFilter(filter: ResolvedFilter): Promise<void> {
    super.setFilter(filter);
    this.#seeded = undefined;
    await this.#seed();
  }

  protected async collect(): Promise<CpuSnapshot> {
    await this.#seed();
    const threads: CpuThread[] = [];
    const procs = new Map<number, CpuProcess>();
    const add = (tgid: number, v: Decoded<typeof stSchedCpu>, isThread: boolean): void => {
      let p = procs.get(tgid);
      if (!p) {
        p = { tgid, comm: '', threads: 0, cpuNs: 0, voluntary: 0, involuntary: 0, runqNs: 0, runqCount: 0 };
        procs.set(tgid, p);
      }
      if (isThread) p.threads++;
      p.cpuNs += v.oncpu_ns;
      p.voluntary += v.voluntary;
      p.involuntary += v.involuntary;
      p.runqNs = (p.runqNs ?? 0) + v.runq_ns;
      p.runqCount = (p.runqCount ?? 0) + v.runq_count;
    };
    const all = this.#threads.readAll();
    this.#runningNow(all);
    // Without the in-kernel per-cgroup map (per_cgroup off, the default), threads are summed
    // by the cgroup id their entry carries.
    const byCgroup = new Map<number, number>();
    const addCg = (v: Decoded<typeof stSchedCpu>): void => {
      if (v.cgroup_id) byCgroup.set(v.cgroup_id, (byCgroup.get(v.cgroup_id) ?? 0) + v.oncpu_ns);
    };
    for (const [tid, v] of all) {
      threads.push({ tid, tgid: v.tgid, cpuNs: v.oncpu_ns, voluntary: v.voluntary, involuntary: v.involuntary, runqNs: v.runq_ns, runqCount: v.runq_count });
      add(v.tgid, v, true);
      addCg(v);
    }
    for (const [tgid, v] of this.#exited.readAll()) {
      add(tgid, v, false);
      addCg(v);
    }
    for (const p of procs.values()) p.comm = commOf(p.tgid);
    const cgroups: CpuSnapshot['cgroups'] = [];
    const kernel = this.#cgroups.readAll();
    if (kernel.size) for (const [id, cpuNs] of kernel) cgroups.push({ cgroupId: id.toString(), path: cgroupPath(id.toString()), cpuNs });
    else for (const [id, cpuNs] of byCgroup) cgroups.push({ cgroupId: String(id), path: cgroupPath(String(id)), cpuNs });
    const perCpu = this.#hist.getPerCpu(0) ?? [];
    const h = perCpu.length ? { slots: perCpu.reduce<number[]>((acc, x) => acc.map((v, i) => v + (x.slots[i] ?? 0)), new Array<number>(32).fill(0)) } : undefined;
    return {
      family: 'cpu',
      backend: 'ebpf',
      timestamp: Date.now(),
      processes: [...procs.values()],
      threads,
      cgroups,
      runqLatency: { unit: 'us', slots: h ? h.slots : [] },
    };
  }
}

// ---------------------------------------------------------------------------------- process

const STATE_LETTERS: Array<[number, string]> = [
  [0x0001, 'S'],
  [0x0002, 'D'],
  [0x0004, 'T'],
  [0x0008, 't'],
  [0x0010, 'X'],
  [0x0020, 'Z'],
  [0x0080, 'X'],
  [0x0402, 'I'],
];
function stateLetter(state: number): string {
  if (state === 0) return 'R';
  if ((state & 0x0402) === 0x0402) return 'I';
  for (const [bit, l] of STATE_LETTERS) if (state & bit) return l;
  return '?';
}

function exitStatus(raw: number): Pick<ProcessEvent, 'exitCode' | 'signal' | 'coreDumped'> {
  const sig = raw & 0x7f;
  return sig === 0 ? { exitCode: (raw >> 8) & 0xff, signal: null, coreDumped: false } : { exitCode: null, signal: sig, coreDumped: (raw & 0x80) !== 0 };
}

/** eBPF `process` reader over bpf/proc.bpf.c: a task iterator per read, events from the ring buffer. */
export class EbpfProcessReader extends BpfReaderBase<ProcessSnapshot, ProcessEvent> {
  readonly family = 'process';
  readonly #iter: IterLink;
  readonly #faults: BpfMap<number, Decoded<typeof stProcStats>>;
  #rb: RingBufferLike<Decoded<typeof stProcEvent>> | undefined;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#iter = this.iterator('st_proc_iter');
    this.#faults = this.map('proc_faults', { key: u32, value: stProcStats });
  }

  protected async collect(): Promise<ProcessSnapshot> {
    const buf = await this.#iter.read();
    const now = monotonicNowNs();
    const page = pageSize();
    const faults = this.#faults.readAll();
    const procs = new Map<number, ProcessInfo>();
    const size = stProcTask.size;
    for (let off = 0; off + size <= buf.length; off += size) {
      const r = stProcTask.decode(buf, off);
      let p = procs.get(r.tgid);
      if (!p) {
        p = {
          tgid: r.tgid, ppid: r.ppid, comm: r.comm, state: '?', threads: 0, startNs: r.start_ns, lifetimeNs: 0,
          cpuNs: 0, userNs: 0, systemNs: 0, voluntary: 0, involuntary: 0, minorFaults: 0, majorFaults: 0,
          faultsTraced: faults.get(r.tgid)?.faults ?? 0, rssBytes: 0, vmBytes: 0, cgroupId: r.cgroup_id.toString(),
        };
        procs.set(r.tgid, p);
      }
      p.cpuNs += r.runtime_ns;
      p.userNs += r.utime_ns;
      p.systemNs += r.stime_ns;
      p.voluntary += r.voluntary;
      p.involuntary += r.involuntary;
      p.minorFaults += r.min_flt;
      p.majorFaults += r.maj_flt;
      if (r.is_leader) {
        p.comm = r.comm;
        p.ppid = r.ppid;
        p.state = stateLetter(r.state);
        p.startNs = r.start_ns;
        p.threads = r.nr_threads;
        p.cpuNs += r.dead_runtime_ns;
        p.voluntary += r.dead_voluntary;
        p.involuntary += r.dead_involuntary;
        p.minorFaults += r.dead_min_flt;
        p.majorFaults += r.dead_maj_flt;
        p.rssBytes = r.rss_pages * page;
        p.vmBytes = r.vm_pages * page;
        p.cgroupId = r.cgroup_id.toString();
      }
    }
    for (const p of procs.values()) p.lifetimeNs = Math.max(0, now - p.startNs);
    return { family: 'process', backend: 'ebpf', timestamp: Date.now(), processes: [...procs.values()] };
  }

  /** exec, fork and exit events (needs the reader opened with `events: true`). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<ProcessEvent> {
    this.check();
    if (!this.wantEvents) throw new ConfigError('process events were not requested: open the reader with events: true', ['events: false']);
    this.#rb ??= this.obj.ringBuffer('proc_events', { codec: stProcEvent });
    const type = ['', 'exec', 'fork', 'exit'] as const;
    return mapEvents(
      this.#rb,
      (r): ProcessEvent | null => {
        const t = type[r.type];
        if (!t) return null;
        const e: ProcessEvent = { type: t, timestamp: monoToEpochMs(r.ts_ns), pid: r.pid, tgid: r.tgid, ppid: r.ppid, comm: r.comm, cgroupId: r.cgroup_id.toString() };
        if (t === 'exec') e.filename = r.filename;
        if (t === 'exit') {
          Object.assign(e, exitStatus(r.exit_code));
          e.durationNs = r.duration_ns;
          e.cpuNs = r.cpu_ns;
          e.faults = r.faults;
          e.voluntary = r.voluntary;
          e.involuntary = r.involuntary;
        }
        return e;
      },
      options.signal,
      (d) => this.eventsActive(d),
    );
  }

  protected override onClose(): void {
    this.#rb?.close();
    super.onClose();
  }
}

// ---------------------------------------------------------------------------------- network

function connOf(key: bigint | number, c: Decoded<typeof stTcpConn>, now: number): TcpConnection {
  const v6 = c.family === 10;
  const addr = (b: Buffer): string => (v6 ? formatIpv6(b) : `${b[0]}.${b[1]}.${b[2]}.${b[3]}`);
  const closed = (c.flags & TCP_FLAGS.closed) !== 0;
  const owner = (c.flags & TCP_FLAGS.owner) !== 0;
  return {
    id: key.toString(16),
    ipVersion: v6 ? 6 : 4,
    localAddress: addr(c.saddr),
    localPort: c.sport,
    remoteAddress: addr(c.daddr),
    remotePort: c.dport,
    state: TCP_STATES[c.state] ?? String(c.state),
    direction: c.flags & TCP_FLAGS.active ? 'active' : c.flags & TCP_FLAGS.passive ? 'passive' : null,
    tgid: owner ? c.tgid : null,
    comm: owner ? c.comm : null,
    bytesSent: c.bytes_sent,
    bytesReceived: c.bytes_received,
    retransmits: c.retransmits,
    closed,
    durationNs: c.start_ns ? (closed ? c.end_ns : now) - c.start_ns : null,
  };
}

/** eBPF `network` reader over bpf/net.bpf.c. Closed connections are reported once, then removed. */
export class EbpfNetworkReader extends BpfReaderBase<NetworkSnapshot, TcpEvent> {
  readonly family = 'network';
  readonly #conns: BpfMap<bigint, Decoded<typeof stTcpConn>>;
  #rb: RingBufferLike<Decoded<typeof stTcpEvent>> | undefined;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#conns = this.map('tcp_conns', { key: u64, value: stTcpConn });
  }

  protected collect(): NetworkSnapshot {
    const now = monotonicNowNs();
    const connections: TcpConnection[] = [];
    for (const [key, c] of this.#conns.readAll()) {
      const conn = connOf(key, c, now);
      connections.push(conn);
      if (conn.closed) this.#conns.delete(key);
    }
    return { family: 'network', backend: 'ebpf', timestamp: Date.now(), connections, processes: perProcess(connections) };
  }

  /** TCP open/close/state events (needs the reader opened with `events: true`). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<TcpEvent> {
    this.check();
    if (!this.wantEvents) throw new ConfigError('network events were not requested: open the reader with events: true', ['events: false']);
    this.#rb ??= this.obj.ringBuffer('tcp_events', { codec: stTcpEvent });
    const type = ['', 'open', 'close', 'state'] as const;
    return mapEvents(
      this.#rb,
      (r): TcpEvent | null => {
        const t = type[r.type];
        if (!t) return null;
        return {
          type: t,
          timestamp: monoToEpochMs(r.ts_ns),
          oldState: TCP_STATES[r.oldstate] ?? String(r.oldstate),
          newState: TCP_STATES[r.newstate] ?? String(r.newstate),
          connection: connOf(r.sock, r.conn, r.ts_ns),
        };
      },
      options.signal,
      (d) => this.eventsActive(d),
    );
  }

  protected override onClose(): void {
    this.#rb?.close();
    super.onClose();
  }
}

// ---------------------------------------------------------------------------------- disk

function devString(dev: number): string {
  return `${dev >>> 20}:${dev & 0xfffff}`;
}

/** eBPF `disk` reader over bpf/blockio.bpf.c. */
export class EbpfDiskReader extends BpfReaderBase<DiskSnapshot> {
  readonly family = 'disk';
  readonly #dev: BpfMap<number, Decoded<typeof stBioDev>>;
  readonly #proc: BpfMap<Decoded<typeof stBioProcKey>, Decoded<typeof stBioProc>>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#dev = this.map('bio_dev', { key: u32, value: stBioDev });
    this.#proc = this.map('bio_proc', { key: stBioProcKey, value: stBioProc });
  }

  protected collect(): DiskSnapshot {
    const devices: DiskSnapshot['devices'] = [];
    for (const [dev, d] of this.#dev.readAll()) {
      const ds = devString(dev);
      devices.push({
        dev: ds,
        name: blockDeviceName(ds),
        readOps: d.read_ops,
        writeOps: d.write_ops,
        otherOps: d.other_ops,
        readBytes: d.read_bytes,
        writeBytes: d.write_bytes,
        totalLatencyNs: d.total_ns,
        latency: { unit: 'us', slots: d.slots },
      });
    }
    const processes: DiskSnapshot['processes'] = [];
    for (const [k, p] of this.#proc.readAll()) {
      const ds = devString(k.dev);
      processes.push({ tgid: k.tgid, comm: p.comm, dev: ds, name: blockDeviceName(ds), readOps: p.read_ops, writeOps: p.write_ops, readBytes: p.read_bytes, writeBytes: p.write_bytes });
    }
    return { family: 'disk', backend: 'ebpf', timestamp: Date.now(), devices, processes };
  }
}

// ---------------------------------------------------------------------------------- syscalls

/** eBPF `syscalls` reader over bpf/syscalls.bpf.c. */
export class EbpfSyscallsReader extends BpfReaderBase<SyscallsSnapshot> {
  readonly family = 'syscalls';
  readonly #stats: BpfMap<Decoded<typeof stSyscallKey>, Decoded<typeof stSyscallStats>>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#stats = this.map('syscall_stats', { key: stSyscallKey, value: stSyscallStats });
  }

  protected collect(): SyscallsSnapshot {
    const syscalls: SyscallsSnapshot['syscalls'] = [];
    for (const [k, s] of this.#stats.readAll()) {
      syscalls.push({ tgid: k.tgid, nr: k.nr, name: syscallName(k.nr), count: s.count, errors: s.errors, totalNs: s.total_ns, maxNs: s.max_ns });
    }
    return { family: 'syscalls', backend: 'ebpf', timestamp: Date.now(), syscalls };
  }
}

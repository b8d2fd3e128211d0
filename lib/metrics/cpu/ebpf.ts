/**
 * The eBPF backend of the `cpu` family (sched.bpf.o).
 * @internal
 */
import { u32, u64, u64n } from '../../ebpf/codec.js';
import type { BpfMap } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import type { ResolvedFilter } from '../family.js';
import { stSchedCpu, stSchedHist, stSchedOncpu, structOffsets } from '../bpf-structs.js';
import { readSchedstat } from '../procfs.js';
import type { CpuProcess, CpuSnapshot, CpuThread } from '../schemas.js';
import { commOf, cgroupPath, type Decoded } from '../readers-shared.js';
import { EbpfProcessReader } from '../process/ebpf.js';

/** Where the fields of struct st_sched_cpu lie (values of thread_cpu). */
const SCHED = structOffsets('st_sched_cpu', ['tgid', 'oncpu_ns', 'voluntary', 'involuntary', 'runq_ns', 'runq_count', 'cgroup_id']);
/** Where the fields of struct st_sched_oncpu lie (per-CPU values of oncpu_since). */
const ONCPU = structOffsets('st_sched_oncpu', ['tid', 'tgid']);
/** Slots of struct st_sched_hist (u64 each). */
const HIST_SLOTS = 32;

/** How long a process's cached comm is used before /proc/<pid>/comm is read again. */
const COMM_REFRESH_MS = 10_000;

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

  /** Who is on each CPU now (tid -> tgid), refilled at every read. */
  readonly #running = new Map<number, number>();

  /**
   * Who is on each CPU now. A thread running right now has run since its last switch-out,
   * which is when its map entry was written: its exact current runtime is in /proc (at most
   * one file per CPU).
   */
  #runningNow(): Map<number, number> {
    const on = this.#running;
    on.clear();
    const raw = this.#oncpu.getRaw(0);
    if (raw === undefined) return on;
    const stride = this.#oncpu.stride;
    for (let c = 0; c < this.#oncpu.cpus; c++) {
      const tid = u32.decode(raw, c * stride + ONCPU.tid);
      if (tid) on.set(tid, u32.decode(raw, c * stride + ONCPU.tgid));
    }
    return on;
  }

  /** Run-queue latency slots summed over CPUs (a new array: it goes into the snapshot). */
  #runqHist(): number[] {
    const raw = this.#hist.getRaw(0);
    if (raw === undefined) return [];
    const hist = new Array<number>(HIST_SLOTS).fill(0);
    const stride = this.#hist.stride;
    for (let c = 0; c < this.#hist.cpus; c++) for (let i = 0; i < HIST_SLOTS; i++) hist[i] = hist[i]! + u64n.decode(raw, c * stride + i * 8);
    return hist;
  }

  /** comm by tgid: when it was read and how many times. */
  readonly #comms = new Map<number, { comm: string; at: number; reads: number }>();

  /**
   * Names the processes. The maps carry no comm, and reading /proc/<pid>/comm of every process
   * every second was most of this reader's CPU on a busy host (2,000 processes: 150 ms a
   * second). A name is read when a process is first seen, once more at the next read (a forked
   * child usually execs at once, which changes its comm), then every COMM_REFRESH_MS; or from
   * the process family's last snapshot when the monitor has that family on eBPF.
   */
  #names(procs: readonly CpuProcess[]): void {
    const now = Date.now();
    // The process family's task iterator, when the same monitor has it, read every process's
    // comm from the kernel at most a tick ago: names from there cost no file at all.
    const peer = this.peer?.('process');
    const known = peer instanceof EbpfProcessReader && !peer.closed ? peer.lastComms() : undefined;
    // (Indexed: a for-of here runs in V8's baseline tiers once a second and makes an iterator result per process.)
    for (let i = 0; i < procs.length; i++) {
      const p = procs[i]!;
      const k = known?.get(p.tgid);
      if (k !== undefined) {
        p.comm = k;
        continue;
      }
      const c = this.#comms.get(p.tgid);
      if (c && c.reads >= 2 && now - c.at < COMM_REFRESH_MS) {
        p.comm = c.comm;
        continue;
      }
      p.comm = commOf(p.tgid);
      this.#comms.set(p.tgid, { comm: p.comm, at: now, reads: (c?.reads ?? 0) + 1 });
    }
    const slots = this.#slots;
    this.#comms.forEach((_, tgid, comms) => {
      if (!slots.has(tgid)) comms.delete(tgid);
    });
  }

  /**
   * Per tgid: the read that last saw it and its record in that read. Kept between reads (the
   * threads of a process are summed through it): no Map built and grown every second.
   */
  readonly #slots = new Map<number, { read: number; p: CpuProcess }>();
  #readNo = 0;
  /** The previous read's thread records, in the order they were read. */
  #prevThreads: CpuThread[] = [];
  /** CPU time by cgroup id in the read under way (refilled at every read). */
  readonly #byCgroup = new Map<number, number>();

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
    const prevThreads = this.#prevThreads;
    const processes: CpuProcess[] = [];
    const slots = this.#slots;
    const readNo = ++this.#readNo;
    // Without the in-kernel per-cgroup map (per_cgroup off, the default), threads are summed
    // by the cgroup id their entry carries.
    const byCgroup = this.#byCgroup;
    byCgroup.clear();
    const add = (tgid: number, cpuNs: number, voluntary: number, involuntary: number, runqNs: number, runqCount: number, cgroupId: number, tid?: number): void => {
      let s = slots.get(tgid);
      if (s === undefined || s.read !== readNo) {
        const fresh: CpuProcess = { tgid, comm: '', threads: 0, cpuNs: 0, voluntary: 0, involuntary: 0, runqNs: 0, runqCount: 0 };
        processes.push(fresh);
        if (s === undefined) slots.set(tgid, (s = { read: readNo, p: fresh }));
        s.read = readNo;
        s.p = fresh;
      }
      const p = s.p;
      p.cpuNs += cpuNs;
      p.voluntary += voluntary;
      p.involuntary += involuntary;
      p.runqNs = (p.runqNs ?? 0) + runqNs;
      p.runqCount = (p.runqCount ?? 0) + runqCount;
      if (cgroupId) byCgroup.set(cgroupId, (byCgroup.get(cgroupId) ?? 0) + cpuNs);
      if (tid === undefined) return;
      p.threads++;
      // Most threads did not run in the last second, and the batch hands them out in the same
      // order while the map keeps its shape: the previous read's record at the same place is
      // kept when nothing in it changed (see CpuSnapshot).
      const q = prevThreads[threads.length];
      if (q !== undefined && q.tid === tid && q.tgid === tgid && q.cpuNs === cpuNs && q.voluntary === voluntary && q.involuntary === involuntary && q.runqNs === runqNs && q.runqCount === runqCount) threads.push(q);
      else threads.push({ tid, tgid, cpuNs, voluntary, involuntary, runqNs, runqCount });
    };
    const running = this.#runningNow();
    // Entries are read where they lie in the batch (no decoded object and Map entry per thread).
    const raw = this.#threads.readAllRaw();
    const v = raw.values;
    for (let i = 0; i < raw.count; i++) {
      const tid = u32.decode(raw.keys, i * raw.keySize);
      const o = i * raw.entryStride;
      const tgid = u32.decode(v, o + SCHED.tgid);
      let cpuNs = u64n.decode(v, o + SCHED.oncpu_ns);
      let runqNs = u64n.decode(v, o + SCHED.runq_ns);
      let runqCount = u64n.decode(v, o + SCHED.runq_count);
      if (running.delete(tid)) {
        const ss = readSchedstat(tgid, tid);
        if (ss && ss.cpuNs > cpuNs) {
          cpuNs = ss.cpuNs;
          runqNs = Math.max(runqNs, ss.runqNs);
          runqCount = Math.max(runqCount, ss.slices);
        }
      }
      add(tgid, cpuNs, u64n.decode(v, o + SCHED.voluntary), u64n.decode(v, o + SCHED.involuntary), runqNs, runqCount, u64n.decode(v, o + SCHED.cgroup_id), tid);
    }
    // On a CPU and never switched out since the reader opened: counted when the filter surely passes it.
    const f = this.filter;
    if (f.cgroupIds.length === 0 && f.comm === undefined) {
      for (const [tid, tgid] of running) {
        if (f.tgids.length && !f.tgids.includes(tgid)) continue;
        const ss = readSchedstat(tgid, tid);
        if (ss && ss.cpuNs > 0) add(tgid, ss.cpuNs, 0, 0, ss.runqNs, ss.slices, 0, tid);
      }
    }
    // Totals of exited threads of live processes: a few entries, read where they lie too.
    const ex = this.#exited.readAllRaw();
    for (let i = 0; i < ex.count; i++) {
      const o = i * ex.entryStride;
      const e = ex.values;
      add(u32.decode(ex.keys, i * ex.keySize), u64n.decode(e, o + SCHED.oncpu_ns), u64n.decode(e, o + SCHED.voluntary), u64n.decode(e, o + SCHED.involuntary), u64n.decode(e, o + SCHED.runq_ns), u64n.decode(e, o + SCHED.runq_count), u64n.decode(e, o + SCHED.cgroup_id));
    }
    slots.forEach((s, tgid) => {
      if (s.read !== readNo) slots.delete(tgid);
    });
    this.#names(processes);
    const cgroups: CpuSnapshot['cgroups'] = [];
    // The in-kernel per-cgroup map is filled only when the object was loaded with per_cgroup.
    const kernel = this.#cgroups.readAllRaw();
    if (kernel.count) {
      for (let i = 0; i < kernel.count; i++) {
        const id = u64.decode(kernel.keys, i * kernel.keySize).toString();
        cgroups.push({ cgroupId: id, path: cgroupPath(id), cpuNs: u64n.decode(kernel.values, i * kernel.entryStride) });
      }
    } else byCgroup.forEach((cpuNs, id) => cgroups.push({ cgroupId: String(id), path: cgroupPath(String(id)), cpuNs }));
    this.#prevThreads = threads;
    const hist = this.#runqHist();
    return {
      family: 'cpu',
      backend: 'ebpf',
      timestamp: Date.now(),
      processes,
      threads,
      cgroups,
      runqLatency: { unit: 'us', slots: hist },
    };
  }
}

/**
 * The eBPF backend of the `cpu` family (sched.bpf.o).
 * @internal
 */
import { u32, u64n } from '../../ebpf/codec.js';
import type { BpfMap, RawMapContents } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import { sameFilter, type ResolvedFilter } from '../family.js';
import { stProcTask, stSchedCpu, stSchedHist, stSchedOncpu, structOffsets } from '../bpf-structs.js';
import { KeptFiles, readSchedstat } from '../procfs.js';
import type { CpuProcess, CpuSnapshot, CpuThread } from '../schemas.js';
import { commOf, cgroupPath, WritesGate, type Decoded } from '../readers-shared.js';
import { EbpfProcessReader } from '../process/ebpf.js';

/** Where the fields of struct st_sched_cpu lie (values of thread_cpu). */
const SCHED = structOffsets('st_sched_cpu', ['tgid', 'oncpu_ns', 'voluntary', 'involuntary', 'runq_ns', 'runq_count', 'cgroup_id']);
/** Where the fields of struct st_proc_task lie (the process family's task iterator records, one per thread). */
const TASK = structOffsets('st_proc_task', ['tgid', 'tid', 'runtime_ns', 'voluntary', 'involuntary', 'runq_ns', 'runq_count', 'cgroup_id', 'task_flags']);
/** PF_EXITING (include/linux/sched.h): a thread on its way out, which sched.bpf.c may already have folded into exited_cpu. */
const PF_EXITING = 0x4;
/** How old the process family's pass may be for this read (a monitor reads every family in the same tick). */
const PEER_MAX_AGE_MS = 250;
/** Where the fields of struct st_sched_oncpu lie (per-CPU values of oncpu_since). */
const ONCPU = structOffsets('st_sched_oncpu', ['tid', 'tgid']);
/** Slots of struct st_sched_hist (u64 each). */
const HIST_SLOTS = 32;

/** How long a process's cached comm is used before /proc/<pid>/comm is read again. */
const COMM_REFRESH_MS = 10_000;

/** A process's sums in the read under way, and its record in the last snapshot. */
interface CpuSlot {
  readonly tgid: number;
  /** The read that last saw it. */
  read: number;
  last: CpuProcess | undefined;
  threads: number;
  cpuNs: number;
  voluntary: number;
  involuntary: number;
  runqNs: number;
  runqCount: number;
}

/** eBPF `cpu` reader over bpf/sched.bpf.c. */
export class EbpfCpuReader extends BpfReaderBase<CpuSnapshot> {
  readonly family = 'cpu';
  readonly #threads: BpfMap<number, Decoded<typeof stSchedCpu>>;
  readonly #exited: BpfMap<number, Decoded<typeof stSchedCpu>>;
  /** exited_cpu's last batch, read again only when sched.bpf.c changed the map since (a batch walks its 4,096 buckets). */
  readonly #exitedGate: WritesGate<RawMapContents>;
  readonly #hist: BpfMap<number, Decoded<typeof stSchedHist>>;
  readonly #oncpu: BpfMap<number, Decoded<typeof stSchedOncpu>>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#threads = this.map('thread_cpu', { key: u32, value: stSchedCpu });
    this.#exited = this.map('exited_cpu', { key: u32, value: stSchedCpu });
    this.#exitedGate = new WritesGate(this.map('st_writes', { key: u32, value: u64n }));
    this.#hist = this.map('runq_hist', { key: u32, value: stSchedHist });
    this.#oncpu = this.map('oncpu_since', { key: u32, value: stSchedOncpu });
  }

  /** The running threads' schedstat files, kept open between reads (this process's reading thread is one at every read). */
  readonly #schedstat = new KeptFiles();

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
  #nameOf(tgid: number, now: number, known: { get(tgid: number): string | undefined } | undefined): string {
    const k = known?.get(tgid);
    if (k !== undefined) return k;
    const c = this.#comms.get(tgid);
    if (c && c.reads >= 2 && now - c.at < COMM_REFRESH_MS) return c.comm;
    const comm = commOf(tgid);
    this.#comms.set(tgid, { comm, at: now, reads: (c?.reads ?? 0) + 1 });
    return comm;
  }

  /**
   * Per tgid: the read that last saw it, the sums of the read under way and the record the
   * process had in the last snapshot. Kept between reads (the threads of a process are summed
   * through it): no Map built and grown every second, and a process whose sums and name did not
   * change keeps its record (the same object) from one snapshot to the next.
   */
  readonly #slots = new Map<number, CpuSlot>();
  /** The slots the read under way has seen, in the order it saw them (refilled at every read). */
  readonly #seen: CpuSlot[] = [];
  #readNo = 0;
  /** The previous read's thread records, in the order they were read. */
  #prevThreads: CpuThread[] = [];
  /** CPU time by cgroup id in the read under way (refilled at every read). */
  readonly #byCgroup = new Map<number, { cpuNs: number }>();

  #seeded: Promise<void> | undefined;

  protected override onClose(): void {
    this.#schedstat.close();
    super.onClose();
  }

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

  /** Threads from thread_cpu (their counters at their last switch-out), running ones from their schedstat. */
  #fromMap(add: (tgid: number, cpuNs: number, voluntary: number, involuntary: number, runqNs: number, runqCount: number, cgroupId: number, tid?: number) => void): void {
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
        const ss = readSchedstat(tgid, tid, this.#schedstat);
        // Each counter on its own: a thread switched in since its entry was written has its
        // run-queue wait and slice count updated at once, its runtime only at the next tick.
        if (ss) {
          cpuNs = Math.max(cpuNs, ss.cpuNs);
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
        const ss = readSchedstat(tgid, tid, this.#schedstat);
        if (ss && ss.cpuNs > 0) add(tgid, ss.cpuNs, 0, 0, ss.runqNs, ss.slices, 0, tid);
      }
    }
  }

  protected async collect(): Promise<CpuSnapshot> {
    await this.#seed();
    // The process family's task iterator, when the same monitor has it on eBPF with the same
    // filter, reads every thread's counters live in this tick (the ones this object's switch
    // program copies into thread_cpu at each switch-out): one walk of the tasks serves both
    // families, no per-thread map is read, and no running thread's schedstat file. (Awaited
    // before this read's state is touched: everything below runs without a pause.)
    const peer = this.peer?.('process');
    const viaPeer = peer instanceof EbpfProcessReader && !peer.closed && sameFilter(peer.passFilter, this.filter);
    const pass = viaPeer ? await peer.recentPass(PEER_MAX_AGE_MS) : undefined;
    const prevThreads = this.#prevThreads;
    // Sized from the last read and filled by index: pushed one by one, the array was copied
    // into a larger one five times over on its way to a few hundred threads, every second.
    const threads: CpuThread[] = new Array(prevThreads.length + 16);
    let nThreads = 0;
    const slots = this.#slots;
    const seen = this.#seen;
    seen.length = 0;
    const readNo = ++this.#readNo;
    // CPU time per cgroup: the threads summed by the cgroup id their entry carries.
    const byCgroup = this.#byCgroup;
    byCgroup.forEach((c) => (c.cpuNs = -1));
    const add = (tgid: number, cpuNs: number, voluntary: number, involuntary: number, runqNs: number, runqCount: number, cgroupId: number, tid?: number): void => {
      let s = slots.get(tgid);
      if (s === undefined) slots.set(tgid, (s = { tgid, read: 0, last: undefined, threads: 0, cpuNs: 0, voluntary: 0, involuntary: 0, runqNs: 0, runqCount: 0 }));
      if (s.read !== readNo) {
        s.read = readNo;
        s.threads = s.cpuNs = s.voluntary = s.involuntary = s.runqNs = s.runqCount = 0;
        seen.push(s);
      }
      s.cpuNs += cpuNs;
      s.voluntary += voluntary;
      s.involuntary += involuntary;
      s.runqNs += runqNs;
      s.runqCount += runqCount;
      if (cgroupId) {
        // (A sum kept in an object of its own: a Map entry set to a new number each time boxed one per thread.)
        const c = byCgroup.get(cgroupId);
        if (c === undefined) byCgroup.set(cgroupId, { cpuNs });
        else c.cpuNs = c.cpuNs < 0 ? cpuNs : c.cpuNs + cpuNs;
      }
      if (tid === undefined) return;
      s.threads++;
      // Most threads did not run in the last second, and the batch hands them out in the same
      // order while the map keeps its shape: the previous read's record at the same place is
      // kept when nothing in it changed (see CpuSnapshot).
      const q = prevThreads[nThreads];
      if (q !== undefined && q.tid === tid && q.tgid === tgid && q.cpuNs === cpuNs && q.voluntary === voluntary && q.involuntary === involuntary && q.runqNs === runqNs && q.runqCount === runqCount) threads[nThreads++] = q;
      else threads[nThreads++] = { tid, tgid, cpuNs, voluntary, involuntary, runqNs, runqCount };
    };
    if (pass !== undefined) {
      const size = stProcTask.size;
      for (let off = 0; off + size <= pass.length; off += size) {
        // A thread past do_exit's start: its totals are (or are about to be) in exited_cpu, as
        // the map path drops it at the same point (counted once, never twice then once).
        if (u32.decode(pass, off + TASK.task_flags) & PF_EXITING) continue;
        add(
          u32.decode(pass, off + TASK.tgid), u64n.decode(pass, off + TASK.runtime_ns), u64n.decode(pass, off + TASK.voluntary), u64n.decode(pass, off + TASK.involuntary),
          u64n.decode(pass, off + TASK.runq_ns), u64n.decode(pass, off + TASK.runq_count), u64n.decode(pass, off + TASK.cgroup_id), u32.decode(pass, off + TASK.tid),
        );
      }
    } else this.#fromMap(add);
    threads.length = nThreads;
    // Totals of exited threads of live processes: a few entries, read where they lie too.
    const ex = this.#exitedGate.get(() => this.#exited.readAllRaw());
    for (let i = 0; i < ex.count; i++) {
      const o = i * ex.entryStride;
      const e = ex.values;
      add(u32.decode(ex.keys, i * ex.keySize), u64n.decode(e, o + SCHED.oncpu_ns), u64n.decode(e, o + SCHED.voluntary), u64n.decode(e, o + SCHED.involuntary), u64n.decode(e, o + SCHED.runq_ns), u64n.decode(e, o + SCHED.runq_count), u64n.decode(e, o + SCHED.cgroup_id));
    }
    this.#schedstat.endRound();
    slots.forEach((s, tgid) => {
      if (s.read !== readNo) slots.delete(tgid);
    });
    this.#comms.forEach((_, tgid, comms) => {
      if (!slots.has(tgid)) comms.delete(tgid);
    });
    // The process family's task iterator, when the same monitor has it, read every process's
    // comm from the kernel at most a tick ago: names from there cost no file at all.
    const known = peer instanceof EbpfProcessReader && !peer.closed ? peer.lastComms() : undefined;
    const now = Date.now();
    const processes: CpuProcess[] = new Array(seen.length);
    // (Indexed: a for-of here runs in V8's baseline tiers once a second and makes an iterator result per process.)
    for (let i = 0; i < seen.length; i++) {
      const s = seen[i]!;
      const comm = this.#nameOf(s.tgid, now, known);
      const q = s.last;
      if (q !== undefined && q.comm === comm && q.threads === s.threads && q.cpuNs === s.cpuNs && q.voluntary === s.voluntary && q.involuntary === s.involuntary && q.runqNs === s.runqNs && q.runqCount === s.runqCount) {
        processes[i] = q;
        continue;
      }
      const p: CpuProcess = { tgid: s.tgid, comm, threads: s.threads, cpuNs: s.cpuNs, voluntary: s.voluntary, involuntary: s.involuntary, runqNs: s.runqNs, runqCount: s.runqCount };
      s.last = p;
      processes[i] = p;
    }
    seen.length = 0;
    const cgroups: CpuSnapshot['cgroups'] = [];
    byCgroup.forEach((c, id, all) => {
      if (c.cpuNs < 0) all.delete(id);
      else cgroups.push({ cgroupId: String(id), path: cgroupPath(String(id)), cpuNs: c.cpuNs });
    });
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

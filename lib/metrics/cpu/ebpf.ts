/**
 * The eBPF backend of the `cpu` family (sched.bpf.o).
 * @internal
 */
import { u32, u64, u64n } from '../../ebpf/codec.js';
import type { BpfMap } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import type { ResolvedFilter } from '../family.js';
import { stSchedCpu, stSchedHist, stSchedOncpu } from '../bpf-structs.js';
import { readSchedstat } from '../procfs.js';
import type { CpuProcess, CpuSnapshot, CpuThread } from '../schemas.js';
import { commOf, cgroupPath, type Decoded } from '../readers-shared.js';
import { EbpfProcessReader } from '../process/ebpf.js';

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

  /** comm by tgid: when it was read and how many times. */
  readonly #comms = new Map<number, { comm: string; at: number; reads: number }>();

  /**
   * Names the processes. The maps carry no comm, and reading /proc/<pid>/comm of every process
   * every second was most of this reader's CPU on a busy host (2,000 processes: 150 ms a
   * second). A name is read when a process is first seen, once more at the next read (a forked
   * child usually execs at once, which changes its comm), then every COMM_REFRESH_MS; or from
   * the process family's last snapshot when the monitor has that family on eBPF.
   */
  #names(procs: Map<number, CpuProcess>): void {
    const now = Date.now();
    // The process family's task iterator, when the same monitor has it, read every process's
    // comm from the kernel at most a tick ago: names from there cost no file at all.
    const peer = this.peer?.('process');
    const known = peer instanceof EbpfProcessReader && !peer.closed ? peer.lastComms() : undefined;
    for (const p of procs.values()) {
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
    for (const tgid of this.#comms.keys()) if (!procs.has(tgid)) this.#comms.delete(tgid);
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
    this.#names(procs);
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

/**
 * The eBPF backend of the `process` family (proc.bpf.o).
 * @internal
 */
import { cstring, u32, u64n } from '../../ebpf/codec.js';
import type { IterLink, RingBufferLike } from '../../ebpf/types.js';
import { BpfReaderBase, monoToEpochMs, monotonicNowNs, type BpfReaderOptions } from '../bpf-base.js';
import { stProcEvent, stProcTask, structOffsets } from '../bpf-structs.js';
import { pageSize } from '../procfs.js';
import type { ProcessEvent, ProcessInfo, ProcessSnapshot } from '../schemas.js';
import { ConfigError } from '../../errors/index.js';
import type { ResolvedFilter } from '../family.js';
import { mapEventBatches, mapEvents, type Decoded } from '../readers-shared.js';

/** Where the fields of struct st_proc_task lie (the task iterator's records). */
const TASK = structOffsets('st_proc_task', [
  'tgid', 'ppid', 'state', 'start_ns', 'runtime_ns', 'utime_ns', 'stime_ns', 'voluntary', 'involuntary', 'min_flt', 'maj_flt',
  'dead_runtime_ns', 'dead_voluntary', 'dead_involuntary', 'dead_min_flt', 'dead_maj_flt', 'rss_pages', 'vm_pages', 'cgroup_id',
  'faults_traced', 'nr_threads', 'is_leader', 'comm',
]);
const comm = cstring(16);

/** A process's slot between reads: the pass that last saw it, its record then, its cgroup id and its name. */
interface Slot {
  pass: number;
  p: ProcessInfo;
  /** The cgroup id as a number and as the string the record carries (formatted once, not every read). */
  cgroup: number;
  cgroupId: string;
  /** The 16 comm bytes (four little-endian words) `name` was decoded from. */
  c0: number;
  c1: number;
  c2: number;
  c3: number;
  name: string;
}

/**
 * The comm at `off` (TASK.comm), as the string decoded the last time the slot saw the same
 * bytes: a name rarely changes, and decoding it anew made a view and a string per process
 * per read.
 */
function commAt(buf: Uint8Array, off: number, s: Slot): string {
  const w0 = u32.decode(buf, off), w1 = u32.decode(buf, off + 4), w2 = u32.decode(buf, off + 8), w3 = u32.decode(buf, off + 12);
  if (w0 !== s.c0 || w1 !== s.c1 || w2 !== s.c2 || w3 !== s.c3) {
    s.c0 = w0;
    s.c1 = w1;
    s.c2 = w2;
    s.c3 = w3;
    s.name = comm.decode(buf, off);
  }
  return s.name;
}

/** The letter /proc shows for a task's state bits (TASK_REPORT: the first bit set, from the lowest). */
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
  // Indexed: run for every process each second, a for-of with destructuring made an iterator
  // result and an entry array per step in V8's baseline tiers.
  for (let i = 0; i < STATE_LETTERS.length; i++) {
    const e = STATE_LETTERS[i]!;
    if (state & e[0]) return e[1];
  }
  return '?';
}

function exitStatus(raw: number): Pick<ProcessEvent, 'exitCode' | 'signal' | 'coreDumped'> {
  const sig = raw & 0x7f;
  return sig === 0 ? { exitCode: (raw >> 8) & 0xff, signal: null, coreDumped: false } : { exitCode: null, signal: sig, coreDumped: (raw & 0x80) !== 0 };
}

/**
 * The iterator's output, in bytes, up to which the next pass runs on the calling thread
 * (about 400 tasks: a few tens of microseconds in the kernel); above it, on a libuv worker.
 */
const ITER_SYNC_MAX_BYTES = 64 * 1024;

/** eBPF `process` reader over bpf/proc.bpf.c: a task iterator per read, events from the ring buffer. */
export class EbpfProcessReader extends BpfReaderBase<ProcessSnapshot, ProcessEvent> {
  readonly family = 'process';
  readonly #iter: IterLink;
  #rb: RingBufferLike<Decoded<typeof stProcEvent>> | undefined;
  #inflight: Promise<ProcessSnapshot> | undefined;
  /** The last snapshot built and when. */
  #last: { atMs: number; snap: ProcessSnapshot } | undefined;
  /**
   * Per tgid: the pass that last saw it, its record in that pass, its cgroup id and its name.
   * Kept between reads (each thread's record adds to its process through it): no Map built and
   * grown every second, and a cgroup id or a name is made once, not once per process per read.
   */
  readonly #slots = new Map<number, Slot>();
  #pass = 0;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#iter = this.iterator('st_proc_iter');
  }

  /** Reads that overlap share one pass of the iterator (and the snapshot it gives). */
  protected collect(): Promise<ProcessSnapshot> {
    this.#inflight ??= this.#collect().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /**
   * A snapshot at most `maxAgeMs` old: the read in flight, else the last one when it is recent
   * enough, else a new read. Another family of the same monitor reads through it (one pass of
   * the iterator per tick for both).
   * @internal
   */
  recent(maxAgeMs: number): Promise<ProcessSnapshot> {
    this.check();
    if (this.#inflight) return this.#inflight;
    if (this.#last && performance.now() - this.#last.atMs <= maxAgeMs) return Promise.resolve(this.#last.snap);
    return this.read();
  }

  /**
   * Lookup of comm by tgid in the last snapshot, for another family of the same monitor to
   * name its processes without reading /proc/<pid>/comm; undefined before the first read.
   * @internal
   */
  lastComms(): { get(tgid: number): string | undefined } | undefined {
    if (!this.#last) return undefined;
    // The slots hold exactly the last pass's processes (those it did not see are dropped).
    const slots = this.#slots;
    return { get: (tgid) => slots.get(tgid)?.p.comm };
  }

  /**
   * The iterator's records (struct st_proc_task, one per thread) of a pass at most `maxAgeMs`
   * old, as {@link recent} chooses it: the `cpu` family of the same monitor reads its threads
   * from them (one walk of the tasks per tick for both, no per-thread map to read). The bytes
   * are read-only and stay valid until the next pass.
   * @internal
   */
  async recentPass(maxAgeMs: number): Promise<Uint8Array> {
    await this.recent(maxAgeMs);
    this.check();
    return this.#lastBuf!;
  }

  /** The filter the passes apply (see recentPass). @internal */
  get passFilter(): ResolvedFilter {
    return this.filter;
  }

  /** The records of the last pass (see recentPass). */
  #lastBuf: Uint8Array | undefined;

  /** Bytes the last pass of the iterator wrote (unknown before the first). */
  #lastBytes = Number.POSITIVE_INFINITY;

  async #collect(): Promise<ProcessSnapshot> {
    // A short walk runs on this thread: handing it to a libuv worker and back costs more than
    // walking a few hundred tasks. A host whose last walk was longer gets the worker.
    const buf = this.#lastBytes <= ITER_SYNC_MAX_BYTES ? this.#iter.readSync() : await this.#iter.read();
    this.#lastBytes = buf.length;
    this.#lastBuf = buf;
    const now = monotonicNowNs();
    const page = pageSize();
    const slots = this.#slots;
    const pass = ++this.#pass;
    // Sized from the last pass and filled by index (pushed one by one, it was copied into a
    // larger array several times on the way to a few hundred processes, every second).
    const processes: ProcessInfo[] = new Array((this.#last?.snap.processes.length ?? 0) + 16);
    let n = 0;
    const cgroupIdOf = (s: { cgroup: number; cgroupId: string }, off: number): string => {
      const id = u64n.decode(buf, off + TASK.cgroup_id);
      if (s.cgroup !== id) {
        s.cgroup = id;
        s.cgroupId = String(id);
      }
      return s.cgroupId;
    };
    const size = stProcTask.size;
    // Fields are read where they lie, not through a decoded object per thread: the record of
    // every thread on the host is read each second, and most of it only adds to its process.
    for (let off = 0; off + size <= buf.length; off += size) {
      const tgid = u32.decode(buf, off + TASK.tgid);
      let s = slots.get(tgid);
      const fresh = s === undefined || s.pass !== pass;
      if (fresh) {
        // (p is set just below, once the record exists.)
        if (s === undefined) slots.set(tgid, (s = { pass, p: undefined as unknown as ProcessInfo, cgroup: -1, cgroupId: '', c0: -1, c1: -1, c2: -1, c3: -1, name: '' }));
        // Until its leader's record comes (if it does), a process is named by its first thread.
        const rec: ProcessInfo = {
          tgid, ppid: u32.decode(buf, off + TASK.ppid), comm: commAt(buf, off + TASK.comm, s), state: '?', threads: 0, startNs: u64n.decode(buf, off + TASK.start_ns), lifetimeNs: 0,
          cpuNs: 0, userNs: 0, systemNs: 0, voluntary: 0, involuntary: 0, minorFaults: 0, majorFaults: 0,
          faultsTraced: u64n.decode(buf, off + TASK.faults_traced), rssBytes: 0, vmBytes: 0, cgroupId: cgroupIdOf(s, off),
        };
        s.pass = pass;
        s.p = rec;
        processes[n++] = rec;
      }
      const p = s!.p;
      p.cpuNs += u64n.decode(buf, off + TASK.runtime_ns);
      p.userNs += u64n.decode(buf, off + TASK.utime_ns);
      p.systemNs += u64n.decode(buf, off + TASK.stime_ns);
      p.voluntary += u64n.decode(buf, off + TASK.voluntary);
      p.involuntary += u64n.decode(buf, off + TASK.involuntary);
      p.minorFaults += u64n.decode(buf, off + TASK.min_flt);
      p.majorFaults += u64n.decode(buf, off + TASK.maj_flt);
      if (u32.decode(buf, off + TASK.is_leader) !== 0) {
        if (!fresh) {
          p.comm = commAt(buf, off + TASK.comm, s!);
          p.ppid = u32.decode(buf, off + TASK.ppid);
          p.startNs = u64n.decode(buf, off + TASK.start_ns);
          p.cgroupId = cgroupIdOf(s!, off);
        }
        p.state = stateLetter(u32.decode(buf, off + TASK.state));
        p.threads = u32.decode(buf, off + TASK.nr_threads);
        p.cpuNs += u64n.decode(buf, off + TASK.dead_runtime_ns);
        p.voluntary += u64n.decode(buf, off + TASK.dead_voluntary);
        p.involuntary += u64n.decode(buf, off + TASK.dead_involuntary);
        p.minorFaults += u64n.decode(buf, off + TASK.dead_min_flt);
        p.majorFaults += u64n.decode(buf, off + TASK.dead_maj_flt);
        p.rssBytes = u64n.decode(buf, off + TASK.rss_pages) * page;
        p.vmBytes = u64n.decode(buf, off + TASK.vm_pages) * page;
      }
    }
    slots.forEach((s, tgid) => {
      if (s.pass !== pass) slots.delete(tgid);
    });
    processes.length = n;
    for (let i = 0; i < n; i++) processes[i]!.lifetimeNs = Math.max(0, now - processes[i]!.startNs);
    const snap: ProcessSnapshot = { family: 'process', backend: 'ebpf', timestamp: Date.now(), processes };
    this.#last = { atMs: performance.now(), snap };
    return snap;
  }

  /** exec, fork and exit events (needs the reader opened with `events: true`). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<ProcessEvent> {
    return mapEvents(this.#ring(), toProcessEvent, options.signal, (d) => this.eventsActive(d));
  }

  /** The same events in batches as the ring buffer delivered them (no promise per event). */
  eventBatches(options: { signal?: AbortSignal } = {}): AsyncIterable<ProcessEvent[]> {
    return mapEventBatches(this.#ring(), toProcessEvent, options.signal, (d) => this.eventsActive(d));
  }

  #ring(): RingBufferLike<Decoded<typeof stProcEvent>> {
    this.check();
    if (!this.wantEvents) throw new ConfigError('process events were not requested: open the reader with events: true', ['events: false']);
    return (this.#rb ??= this.obj.ringBuffer('proc_events', { codec: stProcEvent, reuseBuffers: true }));
  }

  protected override onClose(): void {
    this.#rb?.close();
    super.onClose();
  }
}

const PROC_EVENT_TYPES = ['', 'exec', 'fork', 'exit'] as const;
function toProcessEvent(r: Decoded<typeof stProcEvent>): ProcessEvent | null {
  const t = PROC_EVENT_TYPES[r.type];
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
}

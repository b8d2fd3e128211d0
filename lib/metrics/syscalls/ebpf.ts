/**
 * The eBPF backend of the `syscalls` family (syscalls.bpf.o).
 * @internal
 */
import type { BpfMap } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import { u32, u64n } from '../../ebpf/codec.js';
import { stSyscallKey, stSyscallStats, structOffsets } from '../bpf-structs.js';
import type { SyscallStat, SyscallsSnapshot } from '../schemas.js';
import { syscallName } from '../syscall-names.js';
import type { Decoded } from '../readers-shared.js';

/** Where the fields of the syscall_stats entries lie. */
const KEY = structOffsets('st_syscall_key', ['tgid', 'nr']);
const STATS = structOffsets('st_syscall_stats', ['count', 'errors', 'total_ns', 'max_ns']);

/** eBPF `syscalls` reader over bpf/syscalls.bpf.c. */
export class EbpfSyscallsReader extends BpfReaderBase<SyscallsSnapshot> {
  readonly family = 'syscalls';
  readonly #stats: BpfMap<Decoded<typeof stSyscallKey>, Decoded<typeof stSyscallStats>>;

  /** Attaches the object's programs and opens its maps; the reader owns `o.object`. */
  constructor(o: BpfReaderOptions) {
    super(o);
    this.#stats = this.map('syscall_stats', { key: stSyscallKey, value: stSyscallStats });
  }

  /** The previous read's records, in the order the batch gave them. */
  #prev: SyscallStat[] = [];

  protected collect(): SyscallsSnapshot {
    const prev = this.#prev;
    // Entries are read where they lie in the batch (no decoded key, value and Map entry each).
    const raw = this.#stats.readAllRaw();
    // Sized once and filled by index: no copies of an array grown one push at a time.
    const syscalls: SyscallStat[] = new Array(raw.count);
    const { keys, values } = raw;
    for (let i = 0; i < raw.count; i++) {
      const k = i * raw.keySize;
      const o = i * raw.entryStride;
      const tgid = u32.decode(keys, k + KEY.tgid);
      const nr = u32.decode(keys, k + KEY.nr);
      const count = u64n.decode(values, o + STATS.count);
      const errors = u64n.decode(values, o + STATS.errors);
      const totalNs = u64n.decode(values, o + STATS.total_ns);
      const maxNs = u64n.decode(values, o + STATS.max_ns);
      // Most (process, syscall) pairs are not called in a second, and the kernel hands the
      // entries out in the same order while the map keeps its shape: the record of the previous
      // read at the same place is kept when nothing in it changed (see SyscallsSnapshot).
      const q = prev[i];
      if (q !== undefined && q.tgid === tgid && q.nr === nr && q.count === count && q.errors === errors && q.totalNs === totalNs && q.maxNs === maxNs) syscalls[i] = q;
      else syscalls[i] = { tgid, nr, name: syscallName(nr), count, errors, totalNs, maxNs };
    }
    this.#prev = syscalls;
    return { family: 'syscalls', backend: 'ebpf', timestamp: Date.now(), syscalls };
  }
}

/**
 * The eBPF backend of the `syscalls` family (syscalls.bpf.o).
 * @internal
 */
import type { BpfMap } from '../../ebpf/map.js';
import { BpfReaderBase, type BpfReaderOptions } from '../bpf-base.js';
import { stSyscallKey, stSyscallStats } from '../bpf-structs.js';
import type { SyscallsSnapshot } from '../schemas.js';
import { syscallName } from '../syscall-names.js';
import type { Decoded } from '../readers-shared.js';

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

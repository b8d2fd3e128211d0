/**
 * Registers the built-in families (cpu, process, network, disk, syscalls) with their eBPF
 * and procfs backends, and opens single readers directly.
 * @module
 */
import type { BpfObject } from '../ebpf/object.js';
import { loadBundled } from './bpf-base.js';
import { resolveFilter } from './cgroup.js';
import { EbpfCpuReader, EbpfDiskReader, EbpfNetworkReader, EbpfProcessReader, EbpfSyscallsReader } from './ebpf-readers.js';
import { registerFamily, type Backend, type FamilyContext, type Filter, type MetricReader } from './family.js';
import { ProcfsCpuReader, ProcfsDiskReader, ProcfsNetworkReader, ProcfsProcessReader } from './procfs-readers.js';
import type { CpuSnapshot, DiskSnapshot, NetworkSnapshot, ProcessEvent, ProcessSnapshot, SyscallsSnapshot, TcpEvent } from './schemas.js';
import { ConfigError } from '../errors/index.js';
import { MetricsError } from './errors.js';


/** Bundled object of each built-in family's eBPF backend. */
export const BUILTIN_OBJECTS = {
  cpu: 'sched.bpf.o',
  process: 'proc.bpf.o',
  network: 'net.bpf.o',
  disk: 'blockio.bpf.o',
  syscalls: 'syscalls.bpf.o',
} as const;

type Ctor = new (o: { object: BpfObject; filter: FamilyContext['filter']; events: boolean }) => MetricReader;

function ebpfOr(ebpf: Ctor, procfs?: new (f: FamilyContext['filter']) => MetricReader) {
  return async (ctx: FamilyContext): Promise<MetricReader> => {
    if (ctx.backend === 'procfs' && procfs) return new procfs(ctx.filter);
    if (ctx.backend !== 'ebpf') throw new ConfigError(`backend ${ctx.backend} not supported`, [`backend: ${ctx.backend}`]);
    if (!ctx.object) throw new MetricsError('ERR_METRICS_INTERNAL', 'eBPF backend needs its object');
    const object = (await ctx.object) as BpfObject;
    return new ebpf({ object, filter: ctx.filter, events: ctx.events, ...(ctx.peer ? { peer: ctx.peer } : {}) });
  };
}

registerFamily('cpu', ebpfOr(EbpfCpuReader, ProcfsCpuReader), {
  backends: ['ebpf', 'procfs'],
  bpfObject: BUILTIN_OBJECTS.cpu,
  description: 'CPU time per process, thread and cgroup; voluntary/involuntary switches; run-queue latency',
});
registerFamily('process', ebpfOr(EbpfProcessReader, ProcfsProcessReader), {
  backends: ['ebpf', 'procfs'],
  bpfObject: BUILTIN_OBJECTS.process,
  description: 'Processes (CPU, faults, switches, memory, lifetime); exec/fork/exit events',
});
registerFamily('network', ebpfOr(EbpfNetworkReader, ProcfsNetworkReader), {
  backends: ['ebpf', 'procfs'],
  bpfObject: BUILTIN_OBJECTS.network,
  description: 'TCP connections with addresses, ports, bytes and retransmits per process; lifecycle events',
});
registerFamily('disk', ebpfOr(EbpfDiskReader, ProcfsDiskReader), {
  backends: ['ebpf', 'procfs'],
  bpfObject: BUILTIN_OBJECTS.disk,
  description: 'Block I/O per device (latency histogram) and per process, read/write split',
});
registerFamily('syscalls', ebpfOr(EbpfSyscallsReader), {
  backends: ['ebpf'],
  bpfObject: BUILTIN_OBJECTS.syscalls,
  description: 'System call counts, errors and latency per syscall per process',
});

/** Options of the single-reader openers (`openCpuReader`, ...). */
export interface OpenReaderOptions {
  /** Which processes to watch. */
  filter?: Filter;
  /** `ebpf` (default) or `procfs`. */
  backend?: Extract<Backend, 'ebpf' | 'procfs'>;
  /** Produce events (process and network families). */
  events?: boolean;
  /** Load time limit for the eBPF object (default 30 s). */
  timeoutMs?: number;
  /** `max_entries` overrides for the family's maps. */
  mapSizes?: Record<string, number>;
}

async function open<R>(family: keyof typeof BUILTIN_OBJECTS, ebpf: Ctor, procfs: (new (f: FamilyContext['filter']) => MetricReader) | undefined, o: OpenReaderOptions): Promise<R> {
  const filter = resolveFilter(o.filter);
  const backend = o.backend ?? 'ebpf';
  if (backend === 'procfs') {
    if (!procfs) throw new ConfigError(`the ${family} family has no procfs backend`, ['backend: procfs']);
    return new procfs(filter) as R;
  }
  const object = await loadBundled(BUILTIN_OBJECTS[family], {
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.mapSizes ? { mapSizes: o.mapSizes } : {}),
  });
  return new ebpf({ object, filter, events: o.events ?? false }) as R;
}

/** Opens a `cpu` reader. */
export function openCpuReader(o: OpenReaderOptions = {}): Promise<MetricReader<CpuSnapshot>> {
  return open('cpu', EbpfCpuReader, ProcfsCpuReader, o);
}
/** Opens a `process` reader (events: exec, fork, exit). */
export function openProcessReader(o: OpenReaderOptions = {}): Promise<MetricReader<ProcessSnapshot, ProcessEvent>> {
  return open('process', EbpfProcessReader, ProcfsProcessReader, o);
}
/** Opens a `network` reader (events: TCP open, close, state). */
export function openNetworkReader(o: OpenReaderOptions = {}): Promise<MetricReader<NetworkSnapshot, TcpEvent>> {
  return open('network', EbpfNetworkReader, ProcfsNetworkReader, o);
}
/** Opens a `disk` reader. */
export function openDiskReader(o: OpenReaderOptions = {}): Promise<MetricReader<DiskSnapshot>> {
  return open('disk', EbpfDiskReader, ProcfsDiskReader, o);
}
/** Opens a `syscalls` reader (eBPF only). */
export function openSyscallsReader(o: OpenReaderOptions = {}): Promise<MetricReader<SyscallsSnapshot>> {
  return open('syscalls', EbpfSyscallsReader, undefined, o);
}

/**
 * Snapshot and event schemas of the built-in families (cpu, process, network, disk,
 * syscalls). The types are inferred from the schemas. Counters are cumulative: the eBPF
 * backend counts from when its reader opened, the procfs backend from process (or boot)
 * start; take differences between two reads for rates.
 * @module
 */
import { z } from 'zod';
import { SnapshotBaseSchema } from './family.js';

const count = z.number().int().nonnegative();
const ns = z.number().nonnegative();

/** A log2 histogram: `slots[i]` counts values in [2^i, 2^(i+1)) of `unit` (slot 0 also holds 0). */
export const Log2HistogramSchema = z.object({
  unit: z.enum(['us', 'ns']),
  slots: z.array(count),
});
/** A log2 histogram. */
export type Log2Histogram = z.infer<typeof Log2HistogramSchema>;

// ---------------------------------------------------------------------------------- cpu

/** CPU use of one thread. */
export const CpuThreadSchema = z.object({
  tid: count,
  tgid: count,
  /** Time on CPU, ns. */
  cpuNs: ns,
  /** Switches out while blocking. */
  voluntary: count,
  /** Switches out while runnable (preempted). */
  involuntary: count,
  /** Time spent waiting on a run queue, ns (null: backend cannot tell). */
  runqNs: ns.nullable(),
  /** Run-queue waits measured (null: backend cannot tell). */
  runqCount: count.nullable(),
});
/** CPU use of one thread. */
export type CpuThread = z.infer<typeof CpuThreadSchema>;

/** CPU use of one process (all its threads, exited ones included). */
export const CpuProcessSchema = CpuThreadSchema.omit({ tid: true }).extend({
  /** Command name ('' when the backend does not know it). */
  comm: z.string(),
  /** Threads contributing. */
  threads: count,
});
/** CPU use of one process. */
export type CpuProcess = z.infer<typeof CpuProcessSchema>;

/** Snapshot of the `cpu` family. */
export const CpuSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('cpu'),
  processes: z.array(CpuProcessSchema),
  threads: z.array(CpuThreadSchema),
  /** CPU time per cgroup v2 id (decimal string). */
  cgroups: z.array(z.object({ cgroupId: z.string(), path: z.string().nullable(), cpuNs: ns })),
  /** Run-queue latency of every watched thread (null: backend cannot tell). */
  runqLatency: Log2HistogramSchema.nullable(),
});
/**
 * Snapshot of the `cpu` family. A thread whose numbers did not change since the previous read
 * is the previous snapshot's record (the same object): treat records as read-only.
 */
export type CpuSnapshot = z.infer<typeof CpuSnapshotSchema>;

// ---------------------------------------------------------------------------------- process

/** One process. */
export const ProcessInfoSchema = z.object({
  tgid: count,
  ppid: count,
  comm: z.string(),
  /** Kernel task state letter of the leader (R, S, D, Z, T, I, ...). */
  state: z.string(),
  threads: count,
  /** Start, CLOCK_MONOTONIC ns (comparable with `process.hrtime.bigint()`). */
  startNs: ns,
  /** Lifetime so far, ns. */
  lifetimeNs: ns,
  /** CPU time of all threads (exited included), ns. */
  cpuNs: ns,
  userNs: ns,
  systemNs: ns,
  voluntary: count,
  involuntary: count,
  minorFaults: count,
  majorFaults: count,
  /** User page faults seen by the `page_fault_user` tracepoint since the reader opened (null: procfs). */
  faultsTraced: count.nullable(),
  rssBytes: count,
  vmBytes: count,
  /** Cgroup v2 id, decimal string ('' when unknown). */
  cgroupId: z.string(),
});
/** One process. */
export type ProcessInfo = z.infer<typeof ProcessInfoSchema>;

/** Snapshot of the `process` family. */
export const ProcessSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('process'),
  processes: z.array(ProcessInfoSchema),
});
/** Snapshot of the `process` family. */
export type ProcessSnapshot = z.infer<typeof ProcessSnapshotSchema>;

/** A process lifecycle event. */
export const ProcessEventSchema = z.object({
  type: z.enum(['exec', 'fork', 'exit']),
  /** Wall-clock time, ms since the epoch. */
  timestamp: z.number(),
  /** Thread that acted. */
  pid: count,
  /** Process (for `fork`: the new child). */
  tgid: count,
  /** Parent process (for `fork`: the forking parent). */
  ppid: count,
  comm: z.string(),
  /** exec: the path given to execve. */
  filename: z.string().optional(),
  /** exit: exit code (0-255) when it exited, null when killed by a signal. */
  exitCode: z.number().int().nullable().optional(),
  /** exit: the signal that killed it, null when it exited. */
  signal: z.number().int().nullable().optional(),
  /** exit: whether a core was dumped. */
  coreDumped: z.boolean().optional(),
  /** exit: lifetime, ns. */
  durationNs: ns.optional(),
  /** exit: CPU time of all threads, ns. */
  cpuNs: ns.optional(),
  /** exit: user page faults traced since the reader opened. */
  faults: count.optional(),
  voluntary: count.optional(),
  involuntary: count.optional(),
  cgroupId: z.string(),
});
/** A process lifecycle event. */
export type ProcessEvent = z.infer<typeof ProcessEventSchema>;

// ---------------------------------------------------------------------------------- network

/** TCP states by kernel number. */
export const TCP_STATES = [
  '', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV', 'BOUND_INACTIVE',
] as const;

/** One TCP connection. */
export const TcpConnectionSchema = z.object({
  /** Opaque connection id (stable while the connection lives). */
  id: z.string(),
  ipVersion: z.union([z.literal(4), z.literal(6)]),
  localAddress: z.string(),
  localPort: count,
  remoteAddress: z.string(),
  remotePort: count,
  state: z.string(),
  /** `active` for connect(), `passive` for accepted, null when unknown. */
  direction: z.enum(['active', 'passive']).nullable(),
  /** Owning process (null while unknown: an accepted connection before its first I/O). */
  tgid: count.nullable(),
  comm: z.string().nullable(),
  /** Bytes written by the application (null: procfs cannot tell). */
  bytesSent: count.nullable(),
  /** Bytes read by the application (null: procfs cannot tell). */
  bytesReceived: count.nullable(),
  retransmits: count.nullable(),
  /** True once closed (reported once, then forgotten). */
  closed: z.boolean(),
  /** Connection lifetime so far (or total when closed), ns; null when unknown. */
  durationNs: ns.nullable(),
});
/** One TCP connection. */
export type TcpConnection = z.infer<typeof TcpConnectionSchema>;

/** Snapshot of the `network` family. */
export const NetworkSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('network'),
  connections: z.array(TcpConnectionSchema),
  /** Per-process totals over `connections`. */
  processes: z.array(
    z.object({
      tgid: count,
      comm: z.string(),
      connections: count,
      bytesSent: count.nullable(),
      bytesReceived: count.nullable(),
      retransmits: count.nullable(),
    }),
  ),
});
/** Snapshot of the `network` family. */
export type NetworkSnapshot = z.infer<typeof NetworkSnapshotSchema>;

/** A TCP lifecycle event. */
export const TcpEventSchema = z.object({
  type: z.enum(['open', 'close', 'state']),
  timestamp: z.number(),
  oldState: z.string(),
  newState: z.string(),
  connection: TcpConnectionSchema,
});
/** A TCP lifecycle event. */
export type TcpEvent = z.infer<typeof TcpEventSchema>;

// ---------------------------------------------------------------------------------- disk

/** Block I/O of one device (whole disk). */
export const DiskDeviceSchema = z.object({
  /** `major:minor`. */
  dev: z.string(),
  /** Kernel name (`vda`, `loop0`), '' when unknown. */
  name: z.string(),
  readOps: count,
  writeOps: count,
  /** Flush, discard and other operations (null: procfs). */
  otherOps: count.nullable(),
  readBytes: count,
  writeBytes: count,
  /** Summed request latency, ns (procfs: time spent doing I/O). */
  totalLatencyNs: ns,
  /** Issue-to-completion latency (null: procfs). */
  latency: Log2HistogramSchema.nullable(),
});
/** Block I/O of one device. */
export type DiskDevice = z.infer<typeof DiskDeviceSchema>;

/** Block I/O of one process on one device. */
export const DiskProcessSchema = z.object({
  tgid: count,
  comm: z.string(),
  /** Device `major:minor` (null: procfs counts per process only). */
  dev: z.string().nullable(),
  name: z.string().nullable(),
  /** Operations (null: procfs). */
  readOps: count.nullable(),
  writeOps: count.nullable(),
  readBytes: count,
  writeBytes: count,
});
/** Block I/O of one process. */
export type DiskProcess = z.infer<typeof DiskProcessSchema>;

/** Snapshot of the `disk` family. */
export const DiskSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('disk'),
  devices: z.array(DiskDeviceSchema),
  processes: z.array(DiskProcessSchema),
});
/** Snapshot of the `disk` family. */
export type DiskSnapshot = z.infer<typeof DiskSnapshotSchema>;

// ---------------------------------------------------------------------------------- syscalls

/** One (process, syscall) pair. */
export const SyscallStatSchema = z.object({
  tgid: count,
  nr: count,
  name: z.string(),
  count: count,
  errors: count,
  /** Summed latency of completed calls, ns. */
  totalNs: ns,
  maxNs: ns,
});
/** One (process, syscall) pair. */
export type SyscallStat = z.infer<typeof SyscallStatSchema>;

/** Snapshot of the `syscalls` family. */
export const SyscallsSnapshotSchema = SnapshotBaseSchema.extend({
  family: z.literal('syscalls'),
  syscalls: z.array(SyscallStatSchema),
});
/**
 * Snapshot of the `syscalls` family. A pair whose numbers did not change since the previous
 * read is the previous snapshot's record (the same object): treat records as read-only.
 */
export type SyscallsSnapshot = z.infer<typeof SyscallsSnapshotSchema>;

/**
 * Codecs of the structs the bundled programs share with user space. They are not written by
 * hand: each is the number-valued variant generated from the BTF of the compiled objects by
 * scripts/gen-types.ts (lib/ebpf/generated, checked by `gen-types --check` in CI), so a struct
 * is described once, in bpf/*.h. 64-bit fields decode as `number` (exact below 2^53: counters,
 * nanosecond times, cgroup ids), which keeps the readers' hot path free of bigint.
 * @module
 * @internal
 */
import { ConfigError } from '../errors/index.js';
import {
  BlockioLayouts,
  FilterLayouts,
  NetLayouts,
  ProcLayouts,
  SchedCpuLayouts,
  StBioDevN,
  StBioProcKeyN,
  StBioProcN,
  StFilterConfigN,
  StProcEventN,
  StProcTaskN,
  StSchedCpuN,
  StSchedHistN,
  StSchedOncpuN,
  StSyscallKeyN,
  StSyscallStatsN,
  StTcpConnN,
  StTcpEventN,
  SyscallsLayouts,
} from '../ebpf/generated/index.js';

/** Field offsets and size of every struct the readers decode, by C name (as BTF gave them). */
export const STRUCT_LAYOUTS: Record<string, { size: number; offsets: Record<string, number> }> = Object.fromEntries(
  Object.entries({ ...FilterLayouts, ...SchedCpuLayouts, ...ProcLayouts, ...NetLayouts, ...BlockioLayouts, ...SyscallsLayouts }).map(
    ([name, l]) => [name, { size: l.size, offsets: l.fields }],
  ),
);

/**
 * Byte offsets of the named fields of a struct (by C name, from {@link STRUCT_LAYOUTS}), for
 * readers that read a few fields of many records in place instead of decoding each record
 * into an object. Throws when the struct or a field is unknown (a renamed field in bpf/*.h).
 */
export function structOffsets<const N extends string>(struct: string, names: readonly N[]): Readonly<Record<N, number>> {
  const layout = STRUCT_LAYOUTS[struct];
  const out = {} as Record<N, number>;
  for (const n of names) {
    const o = layout?.offsets[n];
    if (o === undefined) throw new ConfigError(`struct ${struct} has no field ${n} in the generated layouts`, [`${struct}.${n}: not in lib/ebpf/generated (npm run gen:types)`]);
    out[n] = o;
  }
  return out;
}

/** struct st_filter_config (filter.h). */
export const stFilterConfig = StFilterConfigN;

/** Bits of st_filter_config.flags (ST_FILTER_* and ST_CFG_* in bpf/filter.h). */
export const FILTER_FLAGS = { tgid: 1, cgroup: 2, comm: 4, events: 0x100 } as const;

/** struct st_sched_cpu (sched_cpu.h). */
export const stSchedCpu = StSchedCpuN;
/** struct st_sched_oncpu (sched_cpu.h). */
export const stSchedOncpu = StSchedOncpuN;
/** struct st_sched_hist (sched_cpu.h). */
export const stSchedHist = StSchedHistN;

/** struct st_proc_event (proc.h). */
export const stProcEvent = StProcEventN;
/** struct st_proc_task (proc.h): one task iterator record. */
export const stProcTask = StProcTaskN;

/** struct st_tcp_conn (net.h). */
export const stTcpConn = StTcpConnN;
/** Bits of st_tcp_conn.flags. */
export const TCP_FLAGS = { active: 1, passive: 2, owner: 4, closed: 8 } as const;
/** struct st_tcp_event (net.h). */
export const stTcpEvent = StTcpEventN;

/** struct st_bio_dev (blockio.h). */
export const stBioDev = StBioDevN;
/** struct st_bio_proc_key (blockio.h). */
export const stBioProcKey = StBioProcKeyN;
/** struct st_bio_proc (blockio.h). */
export const stBioProc = StBioProcN;

/** struct st_syscall_key (syscalls.h). */
export const stSyscallKey = StSyscallKeyN;
/** struct st_syscall_stats (syscalls.h). */
export const stSyscallStats = StSyscallStatsN;

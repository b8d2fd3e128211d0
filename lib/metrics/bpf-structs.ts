/**
 * Codecs of the structs in bpf/{filter.bpf.h,sched.h,proc.h,net.h,blockio.h,syscalls.h}.
 * test/metrics/bpf-structs.test.ts checks every size and offset here against the BTF of the
 * compiled objects, so a change to a header that is not mirrored here fails the tests.
 * @module
 * @internal
 */
import { array, bytes, cstring, field, i32, struct, u16, u32, u64n, u8, type FieldSpec } from '../ebpf/codec.js';

/** Field offsets and size of every mirrored struct, by C name (for the BTF layout test). */
export const STRUCT_LAYOUTS: Record<string, { size: number; offsets: Record<string, number> }> = {};

function def<F extends Record<string, FieldSpec>>(name: string, fields: F, size: number) {
  STRUCT_LAYOUTS[name] = { size, offsets: Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.offset])) };
  return struct(fields, size);
}

/** struct st_filter_config (filter.bpf.h). */
export const stFilterConfig = def('st_filter_config', 
  {
    flags: field(u32, 0),
    comm_len: field(u32, 4),
    cg_level_min: field(u32, 8),
    cg_level_max: field(u32, 12),
    comm: field(cstring(16), 16),
  },
  32,
);

/** Bits of st_filter_config.flags. */
export const FILTER_FLAGS = { tgid: 1, cgroup: 2, comm: 4, events: 0x100 } as const;

/** struct st_sched_cpu (sched_cpu.h). */
export const stSchedCpu = def('st_sched_cpu', 
  {
    tgid: field(u32, 0),
    oncpu_ns: field(u64n, 8),
    voluntary: field(u64n, 16),
    involuntary: field(u64n, 24),
    runq_ns: field(u64n, 32),
    runq_count: field(u64n, 40),
    cgroup_id: field(u64n, 48),
  },
  56,
);

/** struct st_sched_oncpu (sched_cpu.h). */
export const stSchedOncpu = def('st_sched_oncpu', { tid: field(u32, 0), tgid: field(u32, 4) }, 8);

/** struct st_sched_hist (sched_cpu.h). */
export const stSchedHist = def('st_sched_hist', { slots: field(array(u64n, 32), 0) }, 256);

/** struct st_proc_event (proc.h). */
export const stProcEvent = def('st_proc_event', 
  {
    ts_ns: field(u64n, 0),
    type: field(u32, 8),
    pid: field(u32, 12),
    tgid: field(u32, 16),
    ppid: field(u32, 20),
    exit_code: field(u32, 24),
    duration_ns: field(u64n, 32),
    cpu_ns: field(u64n, 40),
    faults: field(u64n, 48),
    voluntary: field(u64n, 56),
    involuntary: field(u64n, 64),
    cgroup_id: field(u64n, 72),
    comm: field(cstring(16), 80),
    filename: field(cstring(256), 96),
  },
  352,
);

/** struct st_proc_stats (proc.h). */
export const stProcStats = def('st_proc_stats', { faults: field(u64n, 0) }, 8);

/** struct st_proc_task (proc.h): one task iterator record. */
export const stProcTask = def('st_proc_task', 
  {
    tgid: field(u32, 0),
    tid: field(u32, 4),
    ppid: field(u32, 8),
    state: field(u32, 12),
    start_ns: field(u64n, 16),
    runtime_ns: field(u64n, 24),
    utime_ns: field(u64n, 32),
    stime_ns: field(u64n, 40),
    voluntary: field(u64n, 48),
    involuntary: field(u64n, 56),
    min_flt: field(u64n, 64),
    maj_flt: field(u64n, 72),
    dead_runtime_ns: field(u64n, 80),
    dead_voluntary: field(u64n, 88),
    dead_involuntary: field(u64n, 96),
    dead_min_flt: field(u64n, 104),
    dead_maj_flt: field(u64n, 112),
    rss_pages: field(u64n, 120),
    vm_pages: field(u64n, 128),
    cgroup_id: field(u64n, 136),
    nr_threads: field(u32, 144),
    is_leader: field(u32, 148),
    comm: field(cstring(16), 152),
  },
  168,
);

/** struct st_tcp_conn (net.h). */
export const stTcpConn = def('st_tcp_conn', 
  {
    saddr: field(bytes(16), 0),
    daddr: field(bytes(16), 16),
    sport: field(u16, 32),
    dport: field(u16, 34),
    family: field(u16, 36),
    state: field(u8, 38),
    flags: field(u8, 39),
    tgid: field(u32, 40),
    start_ns: field(u64n, 48),
    established_ns: field(u64n, 56),
    end_ns: field(u64n, 64),
    bytes_sent: field(u64n, 72),
    bytes_received: field(u64n, 80),
    retransmits: field(u64n, 88),
    cgroup_id: field(u64n, 96),
    comm: field(cstring(16), 104),
  },
  120,
);

/** Bits of st_tcp_conn.flags. */
export const TCP_FLAGS = { active: 1, passive: 2, owner: 4, closed: 8 } as const;

/** struct st_tcp_event (net.h). */
export const stTcpEvent = def('st_tcp_event', 
  {
    ts_ns: field(u64n, 0),
    sock: field(u64n, 8),
    type: field(u32, 16),
    oldstate: field(i32, 20),
    newstate: field(i32, 24),
    conn: field(stTcpConn, 32),
  },
  152,
);

/** struct st_bio_dev (blockio.h). */
export const stBioDev = def('st_bio_dev', 
  {
    read_ops: field(u64n, 0),
    write_ops: field(u64n, 8),
    other_ops: field(u64n, 16),
    read_bytes: field(u64n, 24),
    write_bytes: field(u64n, 32),
    total_ns: field(u64n, 40),
    slots: field(array(u64n, 32), 48),
  },
  304,
);

/** struct st_bio_proc_key (blockio.h). */
export const stBioProcKey = def('st_bio_proc_key', { tgid: field(u32, 0), dev: field(u32, 4) }, 8);

/** struct st_bio_proc (blockio.h). */
export const stBioProc = def('st_bio_proc', 
  {
    read_ops: field(u64n, 0),
    write_ops: field(u64n, 8),
    read_bytes: field(u64n, 16),
    write_bytes: field(u64n, 24),
    total_ns: field(u64n, 32),
    comm: field(cstring(16), 40),
  },
  56,
);

/** struct st_syscall_key (syscalls.h). */
export const stSyscallKey = def('st_syscall_key', { tgid: field(u32, 0), nr: field(u32, 4) }, 8);

/** struct st_syscall_stats (syscalls.h). */
export const stSyscallStats = def('st_syscall_stats', 
  {
    count: field(u64n, 0),
    errors: field(u64n, 8),
    total_ns: field(u64n, 16),
    max_ns: field(u64n, 24),
  },
  32,
);

